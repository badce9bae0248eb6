import { describe, expect, it } from 'vitest';
import { Abandon, step } from '../../../src/backend/deadline.ts';
import { BackendError } from '../../../src/backend/errors.ts';

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
