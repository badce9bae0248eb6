/**
 * The root logger: pino JSON lines on stdout (or a given destination), with
 * redaction as a second line of defence — the session never logs secrets.
 *
 * Redaction is a `formatters.log` pass over the keys of the logged object and of the objects
 * directly inside it (the same reach as the paths `password` and `*.password`), copying only an
 * object that holds such a key, plus a serializer per secret name for child bindings. pino's
 * path-based `redact` did the same job at about a third of the CPU of each line.
 *
 * `logging.format` picks readable lines (pino-pretty) instead: `auto` does so only when
 * stdout is a terminal, so scripts reading a pipe keep the contract's JSON lines.
 */
import { fstatSync, writeSync } from 'node:fs';
import pino from 'pino';
import type prettyModule from 'pino-pretty';
import type { LogFormat } from '../config/schema.ts';
import { BATCHED_CHILD, type Logger } from '../util/logger.ts';
import { isoTime } from '../util/iso-time.ts';
import { onDemand } from '../util/on-demand.ts';
import { batchedDestination, DEFAULT_MAX_WRITE, PIPE_BUF } from './batched-destination.ts';
import { LineQueue } from './deferred-lines.ts';

/** The pretty printer, loaded only when readable lines are asked for (JSON needs none of it). */
const loadPretty = onDemand<typeof prettyModule>('pino-pretty');

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

export interface LogOutput {
  readonly level: string;
  readonly format?: LogFormat;
}

/** Whether `format` means readable lines, given whether the output is a terminal. */
export function wantsPretty(format: LogFormat, isTTY: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && isTTY);
}

export interface RootLoggerOptions {
  /** Other processes write to the same stdout (the cluster's primary and workers). */
  readonly sharedStdout?: boolean;
}

/**
 * The largest write to stdout. A pipe or socket shared with other processes gets writes of at
 * most PIPE_BUF, which the kernel keeps whole, so lines of two workers never interleave; a
 * regular file keeps every write whole anyway, and a process alone on its stdout has no one to
 * interleave with.
 */
export function stdoutWriteLimit(sharedStdout: boolean, stdoutIsFile: boolean): number {
  return sharedStdout && !stdoutIsFile ? PIPE_BUF : DEFAULT_MAX_WRITE;
}

function stdoutIsRegularFile(): boolean {
  try {
    return fstatSync(1).isFile();
  } catch {
    return false;
  }
}

/** What the log may hold while its output fails (a full disk): past this, lines are dropped. */
const MAX_PENDING_LOG = 16 * 1024 * 1024;
/** A failing log output is reported on stderr at most this often. */
const FAILURE_NOTICE_MS = 60_000;

/** Batched stdout: written from the event loop when it is a regular file, by the thread pool when a pipe or socket (journald). */
function stdoutDestination(sharedStdout: boolean): ReturnType<typeof batchedDestination> {
  const isFile = stdoutIsRegularFile();
  return logDestination(1, { maxWrite: stdoutWriteLimit(sharedStdout, isFile), onLoop: isFile });
}

/**
 * The log's destination (stdout, or a file in tests). A write that fails (ENOSPC, EIO) must not
 * reach whatever was logging: written on the loop, sonic-boom would emit the error from inside
 * the log call, and with no listener that throws into the session. So failures are listened
 * for: the batch stays buffered (up to 16 MiB, then lines are dropped) and is tried again, and
 * stderr says so once a minute.
 */
export function logDestination(
  dest: number | string,
  opts: { maxWrite?: number; onLoop?: boolean; notify?: (err: NodeJS.ErrnoException) => void } = {},
): ReturnType<typeof batchedDestination> {
  const d = batchedDestination({ dest, sync: false, maxWrite: opts.maxWrite, maxLength: MAX_PENDING_LOG }, undefined, opts.onLoop === true);
  const notify = opts.notify ?? noticeOnStderr;
  let last = -Infinity;
  d.on('error', (err: NodeJS.ErrnoException) => {
    const now = Date.now();
    if (now - last < FAILURE_NOTICE_MS) return;
    last = now;
    notify(err);
  });
  return d;
}

function noticeOnStderr(err: NodeJS.ErrnoException): void {
  try {
    writeSync(2, `pop3-gateway: writing the log failed (${err.code ?? err.message}); lines are kept up to ${MAX_PENDING_LOG >> 20} MiB and written once it works again\n`);
  } catch {
    // stderr is gone too: nothing left to tell.
  }
}

/**
 * `out` is `logging` (or just a level, for JSON). With a `destination`, `auto` means JSON: a
 * stream handed in is a file or a test's sink, never a terminal.
 */
export function createRootLogger(out: LogOutput | string, destination?: pino.DestinationStream, opts: RootLoggerOptions = {}): RootLogger {
  const { level, format = 'json' } = typeof out === 'string' ? { level: out } : out;
  const isTTY = destination === undefined && process.stdout.isTTY === true;
  // Our batched stdout, unless lines go to a given stream or the pretty printer.
  const own = destination === undefined && !wantsPretty(format, isTTY) ? stdoutDestination(opts.sharedStdout === true) : null;
  const dest = own ?? (wantsPretty(format, isTTY)
    ? loadPretty()({ destination: destination ?? 1, colorize: isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'hostname' })
    : destination!);
  // Session lines are formatted in batches (deferred-lines.ts); with our own destination each
  // batch is written out at once, rather than after the destination's own delay on top.
  const queue = new LineQueue({ afterReplay: own === null ? undefined : () => own.flush() });
  // Redaction happens in pino before serialising, so the pretty printer only ever sees censored records.
  const options: pino.LoggerOptions = {
    level,
    base: { pid: process.pid },
    // pino.stdTimeFunctions.isoTime's text, without a Date and its formatting per line; a
    // replayed session line carries the time it was logged.
    timestamp: () => `,"time":"${isoTime(queue.replayTime ?? Date.now())}"`,
    hooks: {
      // Lines still queued are written before any other line, so the output keeps the order logged.
      logMethod(args, method) {
        queue.beforeLine();
        return method.apply(this, args);
      },
    },
    formatters: {
      level: (label) => ({ level: label }),
      log: (obj) => redactSecrets(obj),
      bindings: (b) => redactSecrets(b),
    },
    // pino applies serializers to child bindings as well (its bindings formatter is for the root only).
    serializers: Object.fromEntries([...SECRET_KEYS].map((k) => [k, () => CENSOR])),
  };
  const root = pino(options, dest) as RootLogger;
  // On the root, so that pino's children (a cluster worker's `{ role: 'worker' }`) inherit it
  // and their sessions' lines keep their bindings.
  Object.defineProperty(root, BATCHED_CHILD, {
    value(this: Logger, bindings: Record<string, unknown>): Logger {
      return queue.child(this, bindings);
    },
  });
  return root;
}
