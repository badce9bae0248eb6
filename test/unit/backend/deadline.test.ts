import { describe, expect, it } from 'vitest';
import { Abandon, step } from '../../../src/backend/deadline.ts';
import { BackendError } from '../../../src/backend/errors.ts';
import { deadlinesOf } from '../../../src/util/deadline-queue.ts';

const spec = (signal?: Abandon, timeoutMs = 1000) => ({ timeoutMs, signal, server: '127.0.0.1:110', what: 'the greeting' });

describe('Abandon', () => {
  it('calls each listener once, in order; later aborts and late listeners do nothing', () => {
    const a = new Abandon();
    const seen: string[] = [];
    a.addEventListener('abort', () => seen.push('one'));
    a.addEventListener('abort', () => seen.push('two'));
    expect(a.aborted).toBe(false);
    a.abort();
    a.abort();
    a.addEventListener('abort', () => seen.push('late'));
    expect(seen).toEqual(['one', 'two']);
    expect(a.aborted).toBe(true);
  });

  it('a removed listener is not called', () => {
    const a = new Abandon();
    const seen: string[] = [];
    const fn = () => seen.push('gone');
    a.addEventListener('abort', fn);
    a.addEventListener('abort', () => seen.push('kept'));
    a.removeEventListener('abort', fn);
    a.removeEventListener('abort', fn);
    a.abort();
    expect(seen).toEqual(['kept']);
  });
});

describe('step with an Abandon', () => {
  it('an abort rejects the step as abandoned and runs its cleanup', async () => {
    const a = new Abandon();
    let cleaned = false;
    const p = step(spec(a), () => () => (cleaned = true));
    a.abort();
    await expect(p).rejects.toMatchObject({ code: 'CLOSED', message: expect.stringMatching(/abandoned/) });
    expect(cleaned).toBe(true);
  });

  it('already abandoned: rejects at once, the body never runs', async () => {
    const a = new Abandon();
    a.abort();
    let ran = false;
    await expect(step(spec(a), () => ((ran = true), () => undefined))).rejects.toBeInstanceOf(BackendError);
    expect(ran).toBe(false);
  });

  it('a settled step leaves no listener behind (a connect takes several steps on one Abandon)', async () => {
    const a = new Abandon();
    for (let i = 0; i < 50; i++) await step(spec(a), (resolve) => (resolve(i), () => undefined));
    await expect(step(spec(a, 10), () => () => undefined)).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect((a as unknown as { fns: unknown[] }).fns).toHaveLength(0);
  });
});

describe('step timers', () => {
  it('a whole-ms timeout waits in the shared deadline queue of that duration, not in a timer of its own', async () => {
    const q = deadlinesOf(4321);
    const before = q.size;
    const timers = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    let resolveIt: (v: number) => void = () => undefined;
    const p = step(spec(undefined, 4321), (resolve) => ((resolveIt = resolve), () => undefined));
    expect(q.size).toBe(before + 1);
    // The queue's own timer at most (armed for its first deadline), never one per step.
    const p2 = step(spec(undefined, 4321), () => () => undefined);
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBeLessThanOrEqual(timers + 1);
    resolveIt(7);
    await expect(p).resolves.toBe(7);
    // Settled: its deadline is cancelled and will never fire.
    void p2.catch(() => undefined);
  });

  it('whole and fractional timeouts both time out (a computed remainder keeps its own timer)', async () => {
    await expect(step(spec(undefined, 15), () => () => undefined)).rejects.toMatchObject({ code: 'TIMEOUT', message: expect.stringMatching(/within 15 ms/) });
    const t0 = performance.now();
    await expect(step(spec(undefined, 12.5), () => () => undefined)).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(10);
  });
});
