/**
 * Deadlines of one fixed duration, for timers that almost never fire: a session's login
 * deadline, the grace before a closed socket is destroyed. Per session, a `setTimeout` +
 * `clearTimeout` pair of a duration nothing else uses creates and drops Node's timer list for
 * that duration (and a libuv re-arm) every time; here a deadline is an array push and a
 * cancel is a field write.
 *
 * Every deadline in a queue has the same duration, so they expire in the order they were
 * added: a FIFO with one unref'd timer armed for the oldest live deadline. Cancelled entries
 * stay until the timer reaches them (or are compacted away when most are cancelled).
 * Callbacks run in deadline order, no earlier than `ms` after `add` (as with setTimeout).
 */

export interface Deadline {
  /** Stops the callback from running; safe to call more than once, or after it ran. */
  cancel(): void;
}

class Entry implements Deadline {
  constructor(readonly at: number, public fn: (() => void) | null) {}

  cancel(): void {
    this.fn = null;
  }
}

/** Compact when at least this many entries wait and most of them are cancelled. */
const COMPACT_AT = 1024;

export class DeadlineQueue {
  private items: Entry[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;
  /** When the armed timer fires (performance.now() time base). */
  private timerAt = Infinity;

  constructor(readonly ms: number) {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new RangeError(`bad deadline duration ${ms}`);
  }

  /** Runs `fn` once, `ms` from now, unless cancelled first. */
  add(fn: () => void): Deadline {
    const e = new Entry(performance.now() + this.ms, fn);
    if (this.items.length - this.head >= COMPACT_AT && this.items.length % COMPACT_AT === 0) this.compact();
    this.items.push(e);
    if (this.timer === null) this.arm(e.at);
    return e;
  }

  /** Deadlines still waiting (cancelled ones not yet dropped included). */
  get size(): number {
    return this.items.length - this.head;
  }

  private arm(at: number): void {
    this.timerAt = at;
    this.timer = setTimeout(this.fire, Math.max(1, Math.ceil(at - performance.now())));
    this.timer.unref();
  }

  private readonly fire = (): void => {
    // What the timer was armed for counts as reached even if the clock reads a hair earlier.
    const now = Math.max(performance.now(), this.timerAt);
    this.timer = null;
    this.timerAt = Infinity;
    const due: (() => void)[] = [];
    while (this.head < this.items.length) {
      const e = this.items[this.head]!;
      if (e.fn !== null && e.at > now) break;
      this.head++;
      if (e.fn !== null) due.push(e.fn);
      e.fn = null;
    }
    this.dropHead();
    // Re-armed before the callbacks run, so one that throws leaves the rest scheduled.
    const next = this.items[this.head];
    if (next !== undefined) this.arm(next.at);
    for (const fn of due) {
      try {
        fn();
      } catch (err) {
        // As from its own setTimeout: uncaught, but the deadlines due with it still run.
        process.nextTick(() => {
          throw err;
        });
      }
    }
  };

  private dropHead(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /** Drops cancelled entries when they are most of the queue (a burst of short sessions). */
  private compact(): void {
    const live = this.items.slice(this.head).filter((e) => e.fn !== null);
    if (live.length * 2 > this.items.length - this.head) return;
    this.items = live;
    this.head = 0;
    if (live.length === 0 && this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
      this.timerAt = Infinity;
    }
  }
}

const queues = new Map<number, DeadlineQueue>();
/** Past this many distinct durations, deadlines get their own queue each time (never kept). */
const MAX_SHARED = 32;

/**
 * The shared queue for deadlines of `ms` (durations come from config: a handful at most). A
 * duration that is not a whole number of ms is a computed remainder (what is left of a connect
 * timeout, say), a one-off: it gets a queue of its own, never kept, so such durations cannot take
 * the shared slots the configured ones need.
 */
export function deadlinesOf(ms: number): DeadlineQueue {
  let q = queues.get(ms);
  if (q === undefined) {
    q = new DeadlineQueue(ms);
    if (queues.size < MAX_SHARED && Number.isInteger(ms)) queues.set(ms, q);
  }
  return q;
}
