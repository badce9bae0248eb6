/**
 * A counter store for tests that forwards every call to a real one but answers only with
 * promises (no `batchNow`), as the Redis store and the cluster worker's do; `over` replaces some
 * of its methods (to count calls, say).
 */
import type { CounterStore } from '../../src/policy/counter-store.ts';

type Methods = Omit<CounterStore, 'kind' | 'degraded' | 'batchNow'>;

export function asyncOnlyStore(store: CounterStore, over: Partial<Methods> = {}): CounterStore {
  return {
    kind: store.kind,
    get degraded() {
      return store.degraded;
    },
    consume: over.consume ?? ((k, w, p) => store.consume(k, w, p)),
    refund: over.refund ?? ((k, w, p) => store.refund(k, w, p)),
    setCount: over.setCount ?? ((k, w, p) => store.setCount(k, w, p)),
    get: over.get ?? ((k, w) => store.get(k, w)),
    block: over.block ?? ((k, ms) => store.block(k, ms)),
    blockedFor: over.blockedFor ?? ((k) => store.blockedFor(k)),
    reset: over.reset ?? ((k) => store.reset(k)),
    batch: over.batch ?? ((ops) => store.batch(ops)),
    close: over.close ?? (() => store.close()),
  };
}
