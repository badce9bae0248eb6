/**
 * One awaited step of the connect phase with a timeout and an abort signal. Whatever the step
 * registered (listeners) is removed and its timer cleared however it ends, so nothing is left
 * behind on the socket or in the timer list.
 */
import { BackendError } from './errors.ts';

export interface StepSpec {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
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
      clearTimeout(timer);
      spec.signal?.removeEventListener('abort', onAbort);
      cleanup?.();
      return true;
    };
    const onAbort = (): void => {
      if (finish()) reject(abortedError(spec.server));
    };
    const timer = setTimeout(() => {
      if (finish()) reject(new BackendError('TIMEOUT', `no ${spec.what} within ${spec.timeoutMs} ms`, { server: spec.server }));
    }, spec.timeoutMs);
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
