import { describe, expect, it } from 'vitest';
import { FailureLatency } from '../../../src/relay/deps.ts';

describe('FailureLatency: the backend refusal time every failed login waits for', () => {
  it('is 0 until a refusal is seen, then a quarter above the slowest one below a second', () => {
    const f = new FailureLatency();
    expect(f.estimate()).toBe(0);
    f.record(400);
    expect(f.estimate()).toBe(500);
  });

  it('keeps a whole second above a refusal delayed on purpose, and a quarter above once that is more', () => {
    const f = new FailureLatency();
    f.record(2000);
    expect(f.estimate()).toBe(3000);
    const g = new FailureLatency();
    g.record(6000);
    expect(g.estimate()).toBe(7500);
  });

  it("covers Dovecot's whole-second range even when every refusal seen came early", () => {
    // A CI run: Dovecot (2 s auth_failure_delay) refused the first attempts after ~1.5 s and
    // later ones after 2.38 s; a quarter's headroom alone gave 1.88 s, and replies split.
    const f = new FailureLatency();
    for (const ms of [1506, 1480, 1455, 1497, 1502, 1490]) f.record(ms);
    expect(f.estimate()).toBeGreaterThanOrEqual(2380);
    // The whole range of a 2 s delay, up to 2.5 s.
    expect(f.estimate()).toBeGreaterThanOrEqual(2500);
  });

  it('stays put for refusals within its headroom, so attempts in flight together share one schedule', () => {
    // Dovecot, 2 s auth_failure_delay: about 1.0 to 2.5 s depending on its 500 ms queue tick.
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
    f.record(400);
    f.record(700);
    expect(f.estimate()).toBe(875);
    f.record(1400);
    expect(f.estimate()).toBe(2400);
  });

  it('comes down once none of the last 16 refusals needs it', () => {
    const f = new FailureLatency();
    f.record(4000);
    for (let i = 0; i < 15; i++) f.record(1000);
    expect(f.estimate()).toBe(5000); // the 4 s refusal is still remembered
    f.record(1000);
    expect(f.estimate()).toBe(2000);
  });
});
