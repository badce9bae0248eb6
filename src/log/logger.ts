/**
 * The root logger: pino JSON lines on stdout (or a given destination), with
 * redaction as a second line of defence — the session never logs secrets.
 *
 * Redaction is a `formatters.log` pass over the keys of the logged object and of the objects
 * directly inside it (the same reach as the paths `password` and `*.password`), copying only an
 * object that holds such a key, plus a serializer per secret name for child bindings. pino's
 * path-based `redact` did the same job at about a third of the CPU of each line.
 */
import pino from 'pino';
import type { Logger } from '../util/logger.ts';
import { batchedDestination, PIPE_BUF } from './batched-destination.ts';

/** Names whose values never reach a log line, at the top level or one object down. */
export const SECRET_KEYS: ReadonlySet<string> = new Set(['password', 'pass', 'secret', 'token', 'authorization', 'credentials']);
/** The same as pino `redact` paths, for loggers built elsewhere (test harness). */
export const REDACT_PATHS = [...SECRET_KEYS, ...[...SECRET_KEYS].map((k) => `*.${k}`)];
const CENSOR = '[redacted]';

export type RootLogger = pino.Logger & Logger;

/** `obj` itself when it holds no secret name; otherwise a copy with those values censored. */
export function redactSecrets(obj: Record<string, unknown>, depth = 0): Record<string, unknown> {
  let out = obj;
  for (const k of Object.keys(obj)) {
    const v = obj[k];
    let w: unknown = v;
    if (SECRET_KEYS.has(k)) w = CENSOR;
    else if (depth === 0 && v !== null && typeof v === 'object' && !Array.isArray(v)) w = redactSecrets(v as Record<string, unknown>, 1);
    if (w !== v) {
      if (out === obj) out = { ...obj };
      out[k] = w;
    }
  }
  return out;
}

export function createRootLogger(level: string, destination?: pino.DestinationStream): RootLogger {
  const dest = destination ?? batchedDestination({ dest: 1, sync: false, maxWrite: PIPE_BUF });
  return pino({
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      level: (label) => ({ level: label }),
      log: (obj) => redactSecrets(obj),
      bindings: (b) => redactSecrets(b),
    },
    // pino applies serializers to child bindings as well (its bindings formatter is for the root only).
    serializers: Object.fromEntries([...SECRET_KEYS].map((k) => [k, () => CENSOR])),
  }, dest) as RootLogger;
}
