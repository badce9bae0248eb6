import { describe, expect, it } from 'vitest';
import { FailureLatency } from '../../../src/relay/deps.ts';

describe('FailureLatency: the backend refusal time every failed login waits for', () => {
  it('is 0 until a refusal is seen, then a quarter above the slowest one', () => {
    const f = new FailureLatency();
    expect(f.estimate()).toBe(0);
    f.record(2000);
    expect(f.estimate()).toBe(2500);
  });

  it('stays put for refusals within its headroom, so attempts in flight together share one schedule', () => {
    // Dovecot, 2 s auth_failure_delay: 2.0 to 2.5 s depending on its 500 ms queue tick.
    const f = new FailureLatency();
    f.record(2026);
    const before = f.estimate();
    for (const ms of [2315, 2309, 2025, 2480, 2031]) {
      f.record(ms);
      expect(f.estimate()).toBe(before);
    }
    expect(before).toBeGreaterThanOrEqual(2500);
  });

  it('rises when a refusal took longer than the estimate itself', () => {
    const f = new FailureLatency();
    f.record(1000);
    f.record(1400);
    expect(f.estimate()).toBe(1750);
  });

  it('comes down once none of the last 16 refusals needs it', () => {
    const f = new FailureLatency();
    f.record(4000);
    for (let i = 0; i < 15; i++) f.record(1000);
    expect(f.estimate()).toBe(5000); // the 4 s refusal is still remembered
    f.record(1000);
    expect(f.estimate()).toBe(1250);
  });
});
