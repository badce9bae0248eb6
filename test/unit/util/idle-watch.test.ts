import { describe, expect, it } from 'vitest';
import { IdleWatch } from '../../../src/util/idle-watch.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves with the times (ms since `t0`) at which the watch ran its callback. */
function watch(ms: number): { w: IdleWatch; fired: number[]; t0: number } {
  const t0 = performance.now();
  const fired: number[] = [];
  const w = new IdleWatch(ms, () => fired.push(performance.now() - t0));
  return { w, fired, t0 };
}

describe('IdleWatch', () => {
  it('runs once the last activity is the timeout old, never earlier, and not again until touched', async () => {
    const { w, fired } = watch(80);
    await sleep(400);
    expect(fired).toHaveLength(1);
    expect(fired[0]).toBeGreaterThanOrEqual(79);
    expect(fired[0]).toBeLessThan(80 * 1.25 + 150); // a quarter of the timeout late at most, plus scheduling on a busy machine
    w.stop();
  });

  it('starts over at every touch', async () => {
    const { w, fired, t0 } = watch(240);
    for (let i = 0; i < 10; i++) {
      await sleep(40);
      w.touch();
    }
    const last = performance.now() - t0;
    expect(fired).toEqual([]); // 400 ms in, never 240 ms without a touch
    await sleep(600);
    expect(fired).toHaveLength(1);
    expect(fired[0]! - last).toBeGreaterThanOrEqual(239);
    w.stop();
  });

  it('is armed again by activity after it ran', async () => {
    const { w, fired } = watch(40);
    await sleep(300);
    expect(fired).toHaveLength(1);
    w.touch();
    await sleep(300);
    expect(fired).toHaveLength(2);
    w.stop();
  });

  it('never runs after stop, touched or not', async () => {
    const { w, fired } = watch(40);
    w.stop();
    w.touch();
    await sleep(150);
    expect(fired).toEqual([]);
  });

  it('refuses a timeout that could never run', () => {
    expect(() => new IdleWatch(0, () => undefined)).toThrow(RangeError);
    expect(() => new IdleWatch(Number.NaN, () => undefined)).toThrow(RangeError);
    expect(() => new IdleWatch(Infinity, () => undefined)).toThrow(RangeError);
  });
});
