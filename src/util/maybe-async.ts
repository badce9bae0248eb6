/**
 * A value now or a promise of it: what a call returns when some of its implementations answer
 * at once (the memory counter store) and others cannot (Redis, the cluster primary over IPC).
 * Chaining with `andThen` here runs the next step at once for a value, so the synchronous case
 * makes no promise and waits for no microtask; the asynchronous case is an ordinary `.then`.
 */
export type MaybePromise<T> = T | Promise<T>;

/**
 * Not named `then`: a module that exports `then` is a thenable, and `await import()` of it
 * would call it.
 */
export function andThen<A, B>(value: MaybePromise<A>, next: (a: A) => MaybePromise<B>): MaybePromise<B> {
  return value instanceof Promise ? value.then(next) : next(value);
}
