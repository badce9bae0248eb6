/**
 * The root logger: pino JSON lines on stdout (or a given destination), with
 * redaction as a second line of defence — the session never logs secrets.
 */
import pino from 'pino';
import type { Logger } from '../util/logger.ts';

export const REDACT_PATHS = [
  'password', 'pass', 'secret', 'token', 'authorization', 'credentials',
  '*.password', '*.pass', '*.secret', '*.token', '*.authorization', '*.credentials',
];

export type RootLogger = pino.Logger & Logger;

export function createRootLogger(level: string, destination?: pino.DestinationStream): RootLogger {
  const dest = destination ?? pino.destination({ dest: 1, sync: false });
  return pino({
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  }, dest) as RootLogger;
}
