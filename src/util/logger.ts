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

/**
 * Where a logger keeps its way to make a batched child (log/logger.ts sets it on the root; pino's
 * children inherit it): a function called with the logger as `this` and the child's bindings.
 * A symbol, so no pino level or method name can clash with it.
 */
export const BATCHED_CHILD: unique symbol = Symbol('pop3gw.batchedChild');

type BatchedChildMaker = (this: Logger, bindings: Record<string, unknown>) => Logger;

/**
 * A session's logger: a child of `parent` whose lines are formatted in batches, a few ms after
 * they are logged, each with the time it was logged and in order with every other line
 * (log/deferred-lines.ts), where `parent` offers that; else a LazyChildLogger, which writes at
 * once (a test's logger).
 */
export function sessionLogger(parent: Logger, bindings: Record<string, unknown>): Logger {
  const make = (parent as { [BATCHED_CHILD]?: BatchedChildMaker })[BATCHED_CHILD];
  return typeof make === 'function' ? make.call(parent, bindings) : new LazyChildLogger(parent, bindings);
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
