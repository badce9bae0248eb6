/**
 * Session log lines, formatted in batches. A session's line is queued with the time it was
 * logged, and every `delayMs` (or every `maxPending` lines) the queue is replayed through pino
 * in one pass, each line stamped with its own time, and handed to the destination in one write.
 * The audit seals its records the same way (audit/sink.ts): formatted one by one in between the
 * TLS and relay work that produced them, lines cost several times what they cost in a tight loop.
 *
 * Order: any line written straight to the root logger (or a child made without batching) first
 * replays what is queued (pino's `logMethod` hook), so the output keeps the order the lines were
 * logged in. Lines reach the destination at most `delayMs` later than before; at process exit
 * the queue is replayed before the destination's own exit hook writes out its buffer.
 *
 * A queued object is formatted later: callers pass object literals and do not change them after.
 */
import pino from 'pino';
import type { Logger } from '../util/logger.ts';

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

const LEVEL_VALUES = pino.levels.values;

/** The part of a pino logger a batched child needs: its level number and children. */
export interface QueueParent {
  readonly levelVal: number;
  child(bindings: Record<string, unknown>): Logger;
}

interface Entry {
  readonly owner: BatchedChildLogger;
  readonly level: Level;
  readonly obj: object | string;
  readonly msg: string | undefined;
  readonly time: number;
}

/** Queues with lines waiting: replayed at exit, before any destination writes out its buffer. */
const waiting = new Set<LineQueue>();
let exitHook = false;

function replayAllAtExit(): void {
  for (const q of [...waiting]) q.replay();
}

export interface LineQueueOptions {
  /** Lines wait at most this long (ms, > 0). */
  readonly delayMs?: number;
  /** Past this many queued lines they are replayed at once. */
  readonly maxPending?: number;
  /** Called after each replay (the destination writes the batch out). */
  readonly afterReplay?: () => void;
}

export const DEFAULT_LINE_DELAY_MS = 20;
const DEFAULT_MAX_PENDING = 128;

export class LineQueue {
  #pending: Entry[] = [];
  #timer: NodeJS.Timeout | null = null;
  #replaying = false;
  /** The time of the line being replayed, for the root's timestamp function; null otherwise. */
  replayTime: number | null = null;
  readonly #delayMs: number;
  readonly #maxPending: number;
  readonly #afterReplay: () => void;

  constructor(opts: LineQueueOptions = {}) {
    this.#delayMs = opts.delayMs ?? DEFAULT_LINE_DELAY_MS;
    this.#maxPending = opts.maxPending ?? DEFAULT_MAX_PENDING;
    this.#afterReplay = opts.afterReplay ?? (() => undefined);
    if (!exitHook) {
      exitHook = true;
      process.prependListener('exit', replayAllAtExit);
    }
  }

  /** A child of `parent` (the root or one of its children) whose lines are queued; pino's child is made at its first replayed line. */
  child(parent: Logger, bindings: Record<string, unknown>): Logger {
    return new BatchedChildLogger(this, parent as Logger & QueueParent, bindings);
  }

  get pending(): number {
    return this.#pending.length;
  }

  /**
   * pino's `logMethod` hook, run before every line any logger of this root writes: lines still
   * queued go first. A replayed line passes straight through.
   */
  beforeLine(): void {
    if (!this.#replaying && this.#pending.length > 0) this.replay();
  }

  push(owner: BatchedChildLogger, level: Level, obj: object | string, msg: string | undefined): void {
    if (this.#pending.length === 0) waiting.add(this);
    this.#pending.push({ owner, level, obj, msg, time: Date.now() });
    if (this.#pending.length >= this.#maxPending) this.replay();
    else if (this.#timer === null) {
      this.#timer = setTimeout(this.#onTimer, this.#delayMs);
      this.#timer.unref();
    }
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    this.replay();
  };

  /** Formats and hands over every queued line, in the order logged. */
  replay(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#replaying || this.#pending.length === 0) return;
    const lines = this.#pending;
    this.#pending = [];
    waiting.delete(this);
    this.#replaying = true;
    try {
      for (const e of lines) {
        this.replayTime = e.time;
        try {
          const log = e.owner.made();
          if (typeof e.obj === 'string') log[e.level](e.obj);
          else log[e.level](e.obj, e.msg);
        } catch {
          // One line pino cannot format must not take the others (or a timer callback) down.
        }
      }
    } finally {
      this.replayTime = null;
      this.#replaying = false;
    }
    try {
      this.#afterReplay();
    } catch {
      // The destination reports its own failures (logger.ts).
    }
  }
}

/** A session's logger: lines at or above the root's level are queued, the rest dropped at once. */
export class BatchedChildLogger implements Logger {
  #made: Logger | null = null;
  readonly #minLevel: number;

  constructor(
    private readonly queue: LineQueue,
    private readonly parent: QueueParent,
    private readonly bindings: Record<string, unknown>,
  ) {
    // Nothing changes a logger's level while the gateway runs (a reload keeps it).
    this.#minLevel = parent.levelVal;
  }

  trace(a: object | string, msg?: string): void {
    this.#log('trace', a, msg);
  }

  debug(a: object | string, msg?: string): void {
    this.#log('debug', a, msg);
  }

  info(a: object | string, msg?: string): void {
    this.#log('info', a, msg);
  }

  warn(a: object | string, msg?: string): void {
    this.#log('warn', a, msg);
  }

  error(a: object | string, msg?: string): void {
    this.#log('error', a, msg);
  }

  #log(level: Level, a: object | string, msg: string | undefined): void {
    if (LEVEL_VALUES[level]! >= this.#minLevel) this.queue.push(this, level, a, msg);
  }

  /** A child of this one writes at once (after what is queued), as any unbatched logger does. */
  child(bindings: Record<string, unknown>): Logger {
    return this.made().child(bindings);
  }

  isLevelEnabled(level: string): boolean {
    return (LEVEL_VALUES[level] ?? 0) >= this.#minLevel;
  }

  /** pino's child for these bindings, made once. */
  made(): Logger {
    return (this.#made ??= this.parent.child(this.bindings));
  }
}
