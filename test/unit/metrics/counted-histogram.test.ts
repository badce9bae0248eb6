import * as prom from 'prom-client';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CountedHistogram } from '../../../src/metrics/counted-histogram.ts';

const BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120];
const VERBS = ['NOOP', 'RETR', 'STAT', 'OTHER'] as const;
const RESULTS = ['ok', 'err', 'denied'] as const;

/** The same observations into prom-client's Histogram and ours, each in a registry of its own. */
function both(obs: ReadonlyArray<readonly [string, string, number]>): { ref: prom.Registry; ours: prom.Registry; h: CountedHistogram<'verb' | 'result'> } {
  const ref = new prom.Registry();
  const ours = new prom.Registry();
  const cfg = { name: 'x_command_duration_seconds', help: 'Commands.', labelNames: ['verb', 'result'] as const, buckets: BUCKETS };
  const r = new prom.Histogram({ ...cfg, registers: [ref] });
  const h = new CountedHistogram({ ...cfg, registers: [ours] });
  for (const [verb, result, v] of obs) {
    r.observe({ verb, result }, v);
    h.observe([verb, result], v);
  }
  return { ref, ours, h };
}

const observation = fc.tuple(
  fc.constantFrom(...VERBS),
  fc.constantFrom(...RESULTS),
  fc.oneof(fc.constantFrom(0, ...BUCKETS, 200), fc.double({ min: 0, max: 300, noNaN: true })),
);

describe('CountedHistogram', () => {
  it('exposes exactly what prom-client\'s Histogram exposes for the same observations', async () => {
    await fc.assert(fc.asyncProperty(fc.array(observation, { maxLength: 60 }), async (obs) => {
      const { ref, ours } = both(obs);
      expect(await ours.metrics()).toBe(await ref.metrics());
      expect(await ours.getMetricsAsJSON()).toEqual(JSON.parse(JSON.stringify(await ref.getMetricsAsJSON())));
    }), { numRuns: 200 });
  });

  it('aggregates across workers as prom-client\'s does (the cluster\'s /metrics)', async () => {
    const a: Array<[string, string, number]> = [['NOOP', 'ok', 0.0004], ['RETR', 'ok', 0.3]];
    const b: Array<[string, string, number]> = [['NOOP', 'ok', 0.002], ['STAT', 'err', 7]];
    const w1 = both(a);
    const w2 = both(b);
    const refAgg = prom.AggregatorRegistry.aggregate([await w1.ref.getMetricsAsJSON(), await w2.ref.getMetricsAsJSON()]);
    const ourAgg = prom.AggregatorRegistry.aggregate([await w1.ours.getMetricsAsJSON(), await w2.ours.getMetricsAsJSON()]);
    expect(await ourAgg.metrics()).toBe(await refAgg.metrics());
    expect(await ourAgg.metrics()).toMatch(/x_command_duration_seconds_count\{verb="NOOP",result="ok"\} 2\n/);
  });

  it('counts an observation above every bound only in +Inf, sum and count', async () => {
    const { ours } = both([['RETR', 'ok', 500]]);
    const text = await ours.metrics();
    expect(text).toContain('x_command_duration_seconds_bucket{le="120",verb="RETR",result="ok"} 0');
    expect(text).toContain('x_command_duration_seconds_bucket{le="+Inf",verb="RETR",result="ok"} 1');
    expect(text).toContain('x_command_duration_seconds_sum{verb="RETR",result="ok"} 500');
  });

  it('reset() empties it, as the registry\'s resetMetrics() expects', async () => {
    const { ours } = both([['NOOP', 'ok', 0.1]]);
    ours.resetMetrics();
    expect(await ours.metrics()).not.toMatch(/_count/);
  });
});
