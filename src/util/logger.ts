/**
 * The logging surface modules below `log/` depend on. pino's Logger satisfies it;
 * only log/, audit/ and app.ts import pino itself.
 */
export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  child(bindings: Record<string, unknown>): Logger;
  /** pino's: whether a line at `level` would be written. Absent: assume it would. */
  isLevelEnabled?(level: string): boolean;
}

/** A logger that drops everything (tests, tools). */
export const silentLogger: Logger = {
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/**
 * A child logger made on the first line that will be written, not before: a session's child
 * (pino serialises its bindings when it is made) is otherwise built for every connection, also
 * at `warn`, where a session that goes well writes nothing. Until the child exists the parent's
 * level is asked per line; after, the child's own methods decide (it has the parent's level, and
 * nothing changes levels at run time), so no line pays for two level checks.
 */
export class LazyChildLogger implements Logger {
  private made: Logger | null = null;

  constructor(private readonly parent: Logger, private readonly bindings: Record<string, unknown>) {}

  trace(a: object | string, msg?: string): void {
    this.write('trace', a, msg);
  }

  debug(a: object | string, msg?: string): void {
    this.write('debug', a, msg);
  }

  info(a: object | string, msg?: string): void {
    this.write('info', a, msg);
  }

  warn(a: object | string, msg?: string): void {
    this.write('warn', a, msg);
  }

  error(a: object | string, msg?: string): void {
    this.write('error', a, msg);
  }

  child(bindings: Record<string, unknown>): Logger {
    return this.logger().child(bindings);
  }

  private logger(): Logger {
    return (this.made ??= this.parent.child(this.bindings));
  }

  private write(level: Level, a: object | string, msg: string | undefined): void {
    if (this.made === null && this.parent.isLevelEnabled?.(level) === false) return;
    const log = this.logger();
    if (typeof a === 'string') log[level](a);
    else log[level](a, msg);
  }
}
