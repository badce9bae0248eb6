import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../../src/util/logger.ts';
import { CounterStoreError, createCounterStore } from '../../../src/policy/counter-store.ts';

describe('memory CounterStore', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2025-01-01T00:00:00Z'));
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('counts consumes within a window and returns the running count', async () => {
    const store = createCounterStore('memory', silentLogger);
    expect(store.kind).toBe('memory');
    expect(store.degraded).toBe(false);
    expect(await store.consume('k', 60_000)).toBe(1);
    expect(await store.consume('k', 60_000)).toBe(2);
    expect(await store.consume('k', 60_000, 3)).toBe(5);
    expect(await store.get('k', 60_000)).toBe(5);
    expect(await store.get('other', 60_000)).toBe(0);
  });

  it('starts over once the window has passed', async () => {
    const store = createCounterStore('memory', silentLogger);
    await store.consume('k', 1_000);
    await store.consume('k', 1_000);
    vi.advanceTimersByTime(999);
    expect(await store.get('k', 1_000)).toBe(2);
    vi.advanceTimersByTime(2);
    expect(await store.get('k', 1_000)).toBe(0);
    expect(await store.consume('k', 1_000)).toBe(1);
  });

  it('judges expiry by the clock even before the cleanup timer runs', async () => {
    const store = createCounterStore('memory', silentLogger);
    await store.consume('k', 1_000);
    await store.block('k', 1_000);
    vi.setSystemTime(Date.now() + 5_000); // moves the clock without firing timers
    expect(await store.get('k', 1_000)).toBe(0);
    expect(await store.blockedFor('k')).toBe(0);
    expect(await store.consume('k', 1_000)).toBe(1);
  });

  it('blocks a key for a while, separately from its counter', async () => {
    const store = createCounterStore('memory', silentLogger);
    await store.consume('k', 60_000);
    await store.block('k', 5_000);
    expect(await store.blockedFor('k')).toBe(5_000);
    expect(await store.get('k', 60_000)).toBe(1);
    vi.advanceTimersByTime(2_000);
    expect(await store.blockedFor('k')).toBe(3_000);
    vi.advanceTimersByTime(3_000);
    expect(await store.blockedFor('k')).toBe(0);
    expect(await store.blockedFor('never')).toBe(0);
  });

  it('renews a block when it is set again', async () => {
    const store = createCounterStore('memory', silentLogger);
    await store.block('k', 5_000);
    vi.advanceTimersByTime(4_000);
    await store.block('k', 5_000);
    expect(await store.blockedFor('k')).toBe(5_000);
  });

  it('reset clears both the counter and the block', async () => {
    const store = createCounterStore('memory', silentLogger);
    await store.consume('k', 60_000);
    await store.block('k', 60_000);
    await store.reset('k');
    expect(await store.get('k', 60_000)).toBe(0);
    expect(await store.blockedFor('k')).toBe(0);
  });

  it('keeps keys apart', async () => {
    const store = createCounterStore('memory', silentLogger);
    await store.consume('a', 60_000);
    await store.block('b', 60_000);
    expect(await store.get('b', 60_000)).toBe(0);
    expect(await store.blockedFor('a')).toBe(0);
  });

  it('refuses windows and points that would make a counter never expire or go backwards', async () => {
    const store = createCounterStore('memory', silentLogger);
    await expect(store.consume('k', 0)).rejects.toThrow(RangeError);
    await expect(store.consume('k', 1000, 0)).rejects.toThrow(RangeError);
    await expect(store.block('k', -1)).rejects.toThrow(RangeError);
  });

  it('two memory stores share nothing', async () => {
    const a = createCounterStore('memory', silentLogger);
    const b = createCounterStore('memory', silentLogger);
    await a.consume('k', 60_000);
    expect(await b.get('k', 60_000)).toBe(0);
  });
});

describe('createCounterStore', () => {
  it('rejects anything but memory or a redis URL', () => {
    expect(() => createCounterStore('mongodb://x', silentLogger)).toThrow(CounterStoreError);
    expect(() => createCounterStore('not a url', silentLogger)).toThrow(CounterStoreError);
  });
});
