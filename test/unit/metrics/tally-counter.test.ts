import * as prom from 'prom-client';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TallyCounter } from '../../../src/metrics/tally-counter.ts';

const LISTENERS = ['pop3', 'pop3s', 'a\u0000b'] as const;
const RESULTS = ['accepted', 'refused', 'tls-failed'] as const;
const cfg = { name: 'x_connections_total', help: 'Connections.', labelNames: ['listener', 'result'] as const };

/** The same increments into prom-client's Counter and ours, each in a registry of its own. */
function both(incs: ReadonlyArray<readonly [string, string, number]>): { ref: prom.Registry; ours: prom.Registry; t: TallyCounter<'listener' | 'result'>; c: prom.Counter<'listener' | 'result'> } {
  const ref = new prom.Registry();
  const ours = new prom.Registry();
  const c = new prom.Counter({ ...cfg, registers: [ref] });
  const t = new TallyCounter({ ...cfg, registers: [ours] });
  for (const [listener, result, n] of incs) {
    c.inc({ listener, result }, n);
    t.inc([listener, result], n);
  }
  return { ref, ours, t, c };
}

const increment = fc.tuple(fc.constantFrom(...LISTENERS), fc.constantFrom(...RESULTS), fc.constantFrom(1, 1, 1, 2, 7));

describe('TallyCounter', () => {
  it('exposes what prom-client\'s Counter exposes for the same increments, read once or many times', async () => {
    await fc.assert(fc.asyncProperty(fc.array(increment, { maxLength: 40 }), fc.array(increment, { maxLength: 40 }), async (first, second) => {
      const { ref, ours, t, c } = both(first);
      expect(await ours.metrics()).toBe(await ref.metrics());
      // More after a read: a read empties the pending sums into the counter, nothing counts twice.
      for (const [listener, result, n] of second) {
        c.inc({ listener, result }, n);
        t.inc([listener, result], n);
      }
      expect(await ours.metrics()).toBe(await ref.metrics());
      expect(await ours.getMetricsAsJSON()).toEqual(JSON.parse(JSON.stringify(await ref.getMetricsAsJSON())));
    }), { numRuns: 150 });
  });

  it('aggregates across workers as prom-client\'s does (the cluster\'s /metrics)', async () => {
    const a = both([['pop3s', 'accepted', 3], ['pop3', 'refused', 1]]);
    const b = both([['pop3s', 'accepted', 2], ['pop3s', 'tls-failed', 1]]);
    const ref = prom.AggregatorRegistry.aggregate([await a.ref.getMetricsAsJSON(), await b.ref.getMetricsAsJSON()]);
    const ours = prom.AggregatorRegistry.aggregate([await a.ours.getMetricsAsJSON(), await b.ours.getMetricsAsJSON()]);
    expect(await ours.metrics()).toBe(await ref.metrics());
    expect(await ours.metrics()).toContain('x_connections_total{listener="pop3s",result="accepted"} 5');
  });

  it('shows a zeroed series before its first event', async () => {
    const reg = new prom.Registry();
    const t = new TallyCounter({ name: 'x_logins_total', help: 'Logins.', labelNames: ['result'] as const, registers: [reg] });
    t.zero(['ok']);
    t.zero(['failed']);
    expect(await reg.metrics()).toContain('x_logins_total{result="ok"} 0');
    expect(await reg.metrics()).toContain('x_logins_total{result="failed"} 0');
    t.inc(['failed']);
    expect(await reg.metrics()).toContain('x_logins_total{result="failed"} 1');
    expect(await reg.metrics()).toContain('x_logins_total{result="ok"} 0');
  });

  it('refuses label values that do not match its label names', () => {
    const t = new TallyCounter({ ...cfg, registers: [new prom.Registry()] });
    expect(() => t.inc(['pop3'])).toThrow(RangeError);
    expect(() => t.inc(['pop3', 'accepted', 'x'])).toThrow(RangeError);
  });
});
