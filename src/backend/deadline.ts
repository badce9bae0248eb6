/**
 * One awaited step of the connect phase with a timeout and an abort signal. Whatever the step
 * registered (listeners) is removed and its timer cleared however it ends, so nothing is left
 * behind on the socket or in the timer list.
 */
import { deadlinesOf } from '../util/deadline-queue.ts';
import { BackendError } from './errors.ts';

/**
 * What the connect steps need of a cancellation: the part of AbortSignal they use. An
 * AbortSignal is one (the probe's); a session uses an Abandon.
 */
export interface Cancellation {
  readonly aborted: boolean;
  addEventListener(type: 'abort', fn: () => void, opts?: { once?: boolean }): void;
  removeEventListener(type: 'abort', fn: () => void): void;
}

/**
 * A session's "the client went away" for its backend connect. An AbortController is an
 * EventTarget (a SafeMap of listener lists, a Listener object and a weak reference per
 * listener, an Event per abort): ~15 µs per connect of a full session in a warmed profile, for a
 * cancellation that almost never happens. This is a flag and an array.
 */
export class Abandon implements Cancellation {
  aborted = false;
  private fns: Array<() => void> = [];

  addEventListener(_type: 'abort', fn: () => void): void {
    if (!this.aborted) this.fns.push(fn);
  }

  removeEventListener(_type: 'abort', fn: () => void): void {
    const i = this.fns.indexOf(fn);
    if (i >= 0) this.fns.splice(i, 1);
  }

  /** Calls each listener once, in the order added; later calls do nothing. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    for (const fn of this.fns.splice(0)) fn();
  }
}

export interface StepSpec {
  readonly timeoutMs: number;
  readonly signal?: Cancellation | undefined;
  /** "host:port", for the error messages. */
  readonly server: string;
  /** What the step waits for, e.g. "the greeting": goes into the TIMEOUT message. */
  readonly what: string;
}

/** Registers listeners, returns the function that removes them. */
export type StepBody<T> = (resolve: (value: T) => void, reject: (err: Error) => void) => () => void;

export function abortedError(server: string): BackendError {
  return new BackendError('CLOSED', 'connection abandoned: the client went away', { server });
}

export function step<T>(spec: StepSpec, body: StepBody<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (spec.signal?.aborted === true) {
      reject(abortedError(spec.server));
      return;
    }
    let settled = false;
    let cleanup: (() => void) | null = null;
    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      timer.cancel();
      spec.signal?.removeEventListener('abort', onAbort);
      cleanup?.();
      return true;
    };
    const onAbort = (): void => {
      if (finish()) reject(abortedError(spec.server));
    };
    // The shared queue of the step's duration: a full session takes four steps (TCP connect,
    // greeting, USER, PASS), and a setTimeout + clearTimeout pair each put a Timeout into Node's
    // timer list and took it out again (the list itself too, when it emptied).
    const timer = deadlinesOf(spec.timeoutMs).add(() => {
      if (finish()) reject(new BackendError('TIMEOUT', `no ${spec.what} within ${spec.timeoutMs} ms`, { server: spec.server }));
    });
    spec.signal?.addEventListener('abort', onAbort, { once: true });
    const remove = body(
      (value) => {
        if (finish()) resolve(value);
      },
      (err) => {
        if (finish()) reject(err);
      },
    );
    // The body may have settled synchronously, before its cleanup existed.
    if (settled) remove();
    else cleanup = remove;
  });
}
