/**
 * An inactivity timeout without a timer per socket. `socket.setTimeout` arms a timer per socket
 * and moves it in Node's timer list on every read and write (about 14 µs of a session's CPU in
 * `bench/perf-sessions.ts`, against 3 in the pipe, which has no timeouts). Here activity is a
 * timestamp write, and a check from the shared deadline queue for a quarter of the timeout looks
 * at it: the callback runs once the last activity is `ms` old, between `ms` and 1.25 × `ms`
 * after it. Like a socket's timer, it runs once and is armed again by the next activity.
 */
import { deadlinesOf, type Deadline, type DeadlineQueue } from './deadline-queue.ts';

/** A check that lands this close before the deadline counts as reached (timers may fire a hair early). */
const SLACK_MS = 1;

export class IdleWatch {
  #last = performance.now();
  #check: Deadline | null = null;
  #stopped = false;
  readonly #queue: DeadlineQueue;

  constructor(readonly ms: number, private readonly onIdle: () => void) {
    if (!(ms > 0) || !Number.isFinite(ms)) throw new RangeError(`bad idle timeout ${ms}`);
    this.#queue = deadlinesOf(Math.max(1, Math.ceil(ms / 4)));
    this.#arm();
  }

  /** Something was read or written: the timeout starts again from now. */
  touch(): void {
    this.#last = performance.now();
    if (this.#check === null && !this.#stopped) this.#arm();
  }

  /** No more checks; touch() does nothing after this. */
  stop(): void {
    this.#stopped = true;
    this.#check?.cancel();
    this.#check = null;
  }

  #arm(): void {
    this.#check = this.#queue.add(this.#onCheck);
  }

  readonly #onCheck = (): void => {
    this.#check = null;
    if (this.#stopped) return;
    if (performance.now() >= this.#last + this.ms - SLACK_MS) this.onIdle();
    else this.#arm();
  };
}
