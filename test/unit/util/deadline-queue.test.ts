import { describe, expect, it } from 'vitest';
import { DeadlineQueue, deadlinesOf } from '../../../src/util/deadline-queue.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('DeadlineQueue', () => {
  it('runs each callback once, no earlier than its duration, in the order they were added', async () => {
    const q = new DeadlineQueue(30);
    const ran: [string, number][] = [];
    const t0 = performance.now();
    q.add(() => ran.push(['a', performance.now() - t0]));
    await sleep(10);
    q.add(() => ran.push(['b', performance.now() - t0]));
    await sleep(80);
    expect(ran.map(([n]) => n)).toEqual(['a', 'b']);
    expect(ran[0]![1]).toBeGreaterThanOrEqual(29);
    expect(ran[1]![1]).toBeGreaterThanOrEqual(39);
    expect(q.size).toBe(0);
  });

  it('never runs a cancelled callback, and still runs the live one behind it on time', async () => {
    const q = new DeadlineQueue(20);
    const ran: string[] = [];
    const a = q.add(() => ran.push('a'));
    await sleep(5);
    q.add(() => ran.push('b'));
    a.cancel();
    a.cancel();
    await sleep(60);
    expect(ran).toEqual(['b']);
  });

  it('drops most cancelled entries of a burst without waiting for their deadline', () => {
    const q = new DeadlineQueue(60_000);
    for (let i = 0; i < 5000; i++) q.add(() => undefined).cancel();
    expect(q.size).toBeLessThan(1100);
  });

  it('keeps going after a callback throws: the ones behind it still run', async () => {
    const q = new DeadlineQueue(10);
    const ran: string[] = [];
    const errors: unknown[] = [];
    const onError = (err: unknown) => errors.push(err);
    process.on('uncaughtException', onError);
    try {
      q.add(() => {
        throw new Error('boom');
      });
      await sleep(2);
      q.add(() => ran.push('after'));
      await sleep(60);
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(errors).toHaveLength(1);
    expect(ran).toEqual(['after']);
  });

  it('shares one queue per duration and refuses a duration that is not a number of ms', () => {
    expect(deadlinesOf(1234)).toBe(deadlinesOf(1234));
    expect(deadlinesOf(1234)).not.toBe(deadlinesOf(1235));
    expect(() => new DeadlineQueue(Number.NaN)).toThrow(RangeError);
    expect(() => new DeadlineQueue(-1)).toThrow(RangeError);
  });

  it('gives a fractional duration (a computed remainder) a queue of its own, so it takes no shared slot', async () => {
    expect(deadlinesOf(12.5)).not.toBe(deadlinesOf(12.5));
    // Still a working deadline.
    const t0 = performance.now();
    await new Promise<void>((resolve) => deadlinesOf(12.5).add(resolve));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(10);
  });
});
