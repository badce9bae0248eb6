/**
 * The root logger: pino JSON lines on stdout (or a given destination), with
 * redaction as a second line of defence — the session never logs secrets.
 * `logging.format` picks readable lines (pino-pretty) instead: `auto` does so only when
 * stdout is a terminal, so scripts reading a pipe keep the contract's JSON lines.
 */
import pino from 'pino';
import pretty from 'pino-pretty';
import type { LogFormat } from '../config/schema.ts';
import type { Logger } from '../util/logger.ts';

export const REDACT_PATHS = [
  'password', 'pass', 'secret', 'token', 'authorization', 'credentials',
  '*.password', '*.pass', '*.secret', '*.token', '*.authorization', '*.credentials',
];

export type RootLogger = pino.Logger & Logger;

export interface LogOutput {
  readonly level: string;
  readonly format?: LogFormat;
}

/** Whether `format` means readable lines, given whether the output is a terminal. */
export function wantsPretty(format: LogFormat, isTTY: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && isTTY);
}

/**
 * `out` is `logging` (or just a level, for JSON). With a `destination`, `auto` means JSON: a
 * stream handed in is a file or a test's sink, never a terminal.
 */
export function createRootLogger(out: LogOutput | string, destination?: pino.DestinationStream): RootLogger {
  const { level, format = 'json' } = typeof out === 'string' ? { level: out } : out;
  const isTTY = destination === undefined && process.stdout.isTTY === true;
  // Redaction happens in pino before serialising, so the pretty printer only ever sees censored records.
  const options: pino.LoggerOptions = {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  };
  // JSON mode is exactly what it always was: the same options, the same asynchronous destination.
  const dest = wantsPretty(format, isTTY)
    ? pretty({ destination: destination ?? 1, colorize: isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'hostname' })
    : destination ?? pino.destination({ dest: 1, sync: false });
  return pino(options, dest) as RootLogger;
}
