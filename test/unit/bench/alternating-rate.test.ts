import { describe, expect, it } from 'vitest';
import { alternatingRate } from '../../../bench/lib/interleaved.ts';

const rounds = (pipe: number[], warn: number[], info: number[]) => ({ sessionsPerSec: { pipe, warn, info } });

describe('alternatingRate: the sessions/s verdict from the alternating rounds', () => {
  it('is the median of per-round ratios, not a ratio of medians', () => {
    // Per-round ratios 0.9, 0.5, 1.0: median 0.9. The ratio of the medians would read 100 ÷ 200 = 0.5.
    const r = alternatingRate(rounds([100, 200, 300], [90, 100, 300], [1, 1, 1]), 'warn');
    expect(r).toEqual({ gateway: 100, pipe: 200, ratio: 0.9 });
  });

  it('reads each variant against the pipe of the same round', () => {
    const r = alternatingRate(rounds([100, 250], [90, 200], [80, 250]), 'info');
    expect(r!.ratio).toBeCloseTo((0.8 + 1) / 2, 3);
  });

  it('gives nothing for a run without rounds or with rounds missing', () => {
    expect(alternatingRate(rounds([], [], []), 'warn')).toBeNull();
    expect(alternatingRate(rounds([100, 100], [90], [90, 90]), 'warn')).toBeNull();
  });
});
