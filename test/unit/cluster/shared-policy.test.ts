/**
 * The cluster's IPC request/response, the primary's shared counts, and the worker-side
 * store and connection limiter over it, with two in-memory peers standing in for a
 * worker and its primary (messages go through JSON, as over cluster's channel).
 */
import { describe, expect, it } from 'vitest';
import { IpcError, IpcPeer, TAG, type IpcSend } from '../../../src/cluster/ipc.ts';
import type { ConnAcquire } from '../../../src/cluster/messages.ts';
import { runStoreBatch, SharedConnectionCounts } from '../../../src/cluster/shared-counters.ts';
import { ClusterConnectionLimiter } from '../../../src/cluster/worker-limiter.ts';
import { IpcCounterStore } from '../../../src/cluster/worker-store.ts';
import type { PolicyConfig } from '../../../src/config/schema.ts';
import { createCounterStore, type CounterStore } from '../../../src/policy/counter-store.ts';
import { NetworkSet } from '../../../src/policy/networks.ts';
import { silentLogger } from '../../../src/util/logger.ts';

/** `delayMs`: how late the worker's messages reach the primary (a busy primary); order is kept. */
function link(delayMs = 0): { worker: IpcPeer; primary: IpcPeer } {
  const peers: { worker?: IpcPeer; primary?: IpcPeer } = {};
  const wire = (to: 'worker' | 'primary'): IpcSend => (message, done) => {
    const copy: unknown = JSON.parse(JSON.stringify(message));
    if (to === 'primary' && delayMs > 0) setTimeout(() => peers[to]!.receive(copy), delayMs);
    else setImmediate(() => peers[to]!.receive(copy));
    done(null);
  };
  peers.worker = new IpcPeer(wire('primary'));
  peers.primary = new IpcPeer(wire('worker'));
  return { worker: peers.worker, primary: peers.primary };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A primary holding one memory store and the live counts, answering any number of workers. */
function primaryFor(workers: number, opts: { delayMs?: number } = {}) {
  const store = createCounterStore('memory', silentLogger);
  const counts = new SharedConnectionCounts();
  const peers = Array.from({ length: workers }, (_, id) => {
    const { worker, primary } = link(opts.delayMs);
    primary
      .handle('store-batch', (b) => runStoreBatch(store, b))
      .handle('conn-acquire', (b) => counts.acquire(id, b as ConnAcquire))
      .onNote('conn-release', (b) => counts.release(id, (b as { slot: number }).slot));
    return worker;
  });
  return { store, counts, peers };
}

const CONNECTIONS: PolicyConfig['connections'] = { maxPerIp: 3, maxTotal: 5, ratePerIp: 0, rateWindow: 60_000 };

function limiter(peer: IpcPeer, store: CounterStore, opts: { timeoutMs?: number; trusted?: string[]; cfg?: PolicyConfig['connections'] } = {}) {
  return new ClusterConnectionLimiter(opts.cfg ?? CONNECTIONS, new NetworkSet(opts.trusted ?? []), store, 64, peer, { log: silentLogger, timeoutMs: opts.timeoutMs });
}

describe('IPC peer', () => {
  it('answers a request with what the handler returns', async () => {
    const { worker, primary } = link();
    primary.handle('double', (b) => (b as number) * 2);
    await expect(worker.request('double', 21, 1000)).resolves.toBe(42);
  });

  it('sends a handler error back to the caller as IPC_REMOTE', async () => {
    const { worker, primary } = link();
    primary.handle('boom', async () => {
      throw new Error('no such thing');
    });
    await expect(worker.request('boom', null, 1000)).rejects.toMatchObject({ code: 'IPC_REMOTE', message: 'no such thing' });
    await expect(worker.request('unknown', null, 1000)).rejects.toMatchObject({ code: 'IPC_REMOTE', message: 'no handler for unknown' });
  });

  it('times out a request nobody answers and drops the late answer', async () => {
    const { worker, primary } = link(60);
    primary.handle('slow', () => 'late');
    await expect(worker.request('slow', null, 20)).rejects.toMatchObject({ code: 'IPC_TIMEOUT' });
    await sleep(80);
    expect(worker.pending).toBe(0);
  });

  it('fails every waiting request at once when the channel closes, and refuses new ones', async () => {
    const { worker, primary } = link();
    primary.handle('never', () => new Promise(() => undefined));
    const waiting = worker.request('never', null, 10_000);
    worker.close('primary gone');
    await expect(waiting).rejects.toBeInstanceOf(IpcError);
    await expect(waiting).rejects.toMatchObject({ code: 'IPC_CLOSED' });
    await expect(worker.request('never', null, 10_000)).rejects.toMatchObject({ code: 'IPC_CLOSED' });
  });

  it('leaves messages without its tag alone', () => {
    const { worker } = link();
    expect(worker.receive({ type: 'prom-client:getMetricsReq' })).toBe(false);
    expect(worker.receive('hello')).toBe(false);
    expect(worker.receive({ tag: TAG, kind: 'note', type: 'nobody-listens', body: null })).toBe(true);
  });

  it('reports a send failure as IPC_CLOSED instead of waiting for the timeout', async () => {
    const peer = new IpcPeer((_m, done) => done(new Error('channel closed')));
    const started = Date.now();
    await expect(peer.request('x', null, 5000)).rejects.toMatchObject({ code: 'IPC_CLOSED' });
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('shared connection counts (primary)', () => {
  const req = (slot: number, key = '192.0.2.1', extra: Partial<ConnAcquire> = {}): ConnAcquire =>
    ({ slot, key, trusted: false, maxPerIp: 3, maxTotal: 5, ...extra });

  it('refuses the fourth connection of a client whichever workers hold the first three', () => {
    const c = new SharedConnectionCounts();
    expect(c.acquire(1, req(1))).toEqual({ ok: true });
    expect(c.acquire(2, req(1))).toEqual({ ok: true });
    expect(c.acquire(1, req(2))).toEqual({ ok: true });
    expect(c.acquire(2, req(2))).toEqual({ ok: false, reason: 'max-per-ip' });
    expect(c.acquire(2, req(3, '192.0.2.2'))).toEqual({ ok: true });
    c.release(1, 2);
    expect(c.acquire(2, req(4))).toEqual({ ok: true });
  });

  it('exempts trusted clients from the per-client limit but not from the total', () => {
    const c = new SharedConnectionCounts();
    for (let i = 1; i <= 5; i++) expect(c.acquire(1, req(i, '10.0.0.1', { trusted: true }))).toEqual({ ok: true });
    expect(c.acquire(2, req(1, '10.0.0.1', { trusted: true }))).toEqual({ ok: false, reason: 'max-total' });
  });

  it('gives back every slot of a worker that died', () => {
    const c = new SharedConnectionCounts();
    c.acquire(1, req(1));
    c.acquire(1, req(2));
    c.acquire(2, req(1));
    expect(c.releaseWorker(1)).toBe(2);
    expect(c.total).toBe(1);
    expect(c.activeFor('192.0.2.1')).toBe(1);
    expect(c.releaseWorker(1)).toBe(0);
  });

  it('counts a repeated slot id once and ignores releases of unknown slots', () => {
    const c = new SharedConnectionCounts();
    c.acquire(1, req(7));
    c.acquire(1, req(7));
    expect(c.total).toBe(1);
    c.release(1, 99);
    c.release(2, 7);
    expect(c.total).toBe(1);
    c.release(1, 7);
    c.release(1, 7);
    expect(c.total).toBe(0);
  });
});

describe('worker counter store over IPC', () => {
  it('shares counts and blocks between two workers through the primary', async () => {
    const { peers } = primaryFor(2);
    const a = new IpcCounterStore(peers[0]!, silentLogger);
    const b = new IpcCounterStore(peers[1]!, silentLogger);
    expect(await a.consume('auth:user:x', 60_000)).toBe(1);
    expect(await b.consume('auth:user:x', 60_000)).toBe(2);
    expect(await a.get('auth:user:x', 60_000)).toBe(2);
    await b.block('auth:user:x', 60_000);
    expect(await a.blockedFor('auth:user:x')).toBeGreaterThan(59_000);
    await a.reset('auth:user:x');
    expect(await b.blockedFor('auth:user:x')).toBe(0);
    expect(await b.get('auth:user:x', 60_000)).toBe(0);
    expect(a.degraded).toBe(false);
  });

  it('uses local counters when the primary is too slow, and a block set then still holds', async () => {
    const { peers, store } = primaryFor(1, { delayMs: 100 });
    const s = new IpcCounterStore(peers[0]!, silentLogger, { timeoutMs: 20 });
    expect(await s.consume('k', 60_000)).toBe(1);
    expect(s.degraded).toBe(true);
    await s.block('k', 60_000);
    const fast = new IpcCounterStore(primaryFor(1).peers[0]!, silentLogger);
    expect(await fast.blockedFor('k')).toBe(0); // another primary knows nothing of it
    expect(await s.blockedFor('k')).toBeGreaterThan(59_000);
    // the late requests still reached the primary's store
    await sleep(150);
    expect(await store.get('k', 60_000)).toBe(1);
  });

  it('sends a batch as one request, reads blocks from both stores and resets both', async () => {
    const { peers, store } = primaryFor(1);
    const sent: string[] = [];
    let unanswered = 1;
    const peer = peers[0]!;
    const request = peer.request.bind(peer);
    peer.request = <T>(type: string, body: unknown, timeoutMs: number): Promise<T> => {
      sent.push(type);
      if (unanswered-- > 0) return Promise.reject(new Error('no answer'));
      return request<T>(type, body, timeoutMs);
    };
    const s = new IpcCounterStore(peer, silentLogger);
    // A block set while the primary does not answer lands on the worker's local counters only.
    await s.block('auth:ip:a', 60_000);
    expect(s.degraded).toBe(true);
    expect(await store.blockedFor('auth:ip:a')).toBe(0);
    sent.length = 0;
    const r = await s.batch([
      { op: 'consume', key: 'auth:ip:a', windowMs: 60_000, points: 1 },
      { op: 'blockedFor', key: 'auth:ip:a' },
      { op: 'consume', key: 'auth:user:u', windowMs: 60_000, points: 2 },
    ]);
    expect(sent).toEqual(['store-batch']);
    expect(s.degraded).toBe(false);
    expect(r[0]).toBe(1);
    expect(r[1]).toBeGreaterThan(59_000); // the local block: the primary has none
    expect(r[2]).toBe(2);
    expect(await store.get('auth:user:u', 60_000)).toBe(2); // counted on the primary
    await s.batch([{ op: 'reset', key: 'auth:ip:a' }]);
    expect(await s.blockedFor('auth:ip:a')).toBe(0); // cleared locally too
    await expect(s.batch([{ op: 'get', key: 'k', windowMs: 1 }, { op: 'block', key: 'k', ms: 0 }])).rejects.toThrow(RangeError);
    expect(sent).toEqual(['store-batch', 'store-batch', 'store-batch']); // the bad batch was never sent
  });

  it('rejects bad arguments before sending anything', () => {
    const { peers } = primaryFor(1);
    const s = new IpcCounterStore(peers[0]!, silentLogger);
    expect(() => s.consume('k', 0)).toThrow(RangeError);
    expect(() => s.consume('k', 1000, 0)).toThrow(RangeError);
  });
});

describe('worker connection limiter over IPC', () => {
  it('holds maxPerIp across two workers and frees slots on release', async () => {
    const { peers, store, counts } = primaryFor(2);
    const a = limiter(peers[0]!, store);
    const b = limiter(peers[1]!, store);
    const held = [await a.acquire('192.0.2.9'), await b.acquire('192.0.2.9'), await a.acquire('192.0.2.9')];
    expect(held.every((h) => h.ok)).toBe(true);
    expect(await b.acquire('192.0.2.9')).toEqual({ ok: false, reason: 'max-per-ip' });
    expect(a.activeFor('192.0.2.9')).toBe(2); // each worker still knows its own share
    expect(b.activeFor('192.0.2.9')).toBe(1);
    if (held[0]!.ok) held[0]!.release();
    if (held[0]!.ok) held[0]!.release(); // twice: counted once
    await sleep(5);
    expect(counts.total).toBe(2);
    expect((await b.acquire('192.0.2.9')).ok).toBe(true);
  });

  it('keeps counting the old limiter\'s slots after a reload builds a new one', async () => {
    const { peers, store, counts } = primaryFor(1);
    const before = limiter(peers[0]!, store);
    const held = [await before.acquire('192.0.2.12'), await before.acquire('192.0.2.12')];
    const after = limiter(peers[0]!, store); // what Gateway.reload builds
    const third = await after.acquire('192.0.2.12');
    expect(third.ok).toBe(true);
    expect(await after.acquire('192.0.2.12')).toEqual({ ok: false, reason: 'max-per-ip' });
    if (third.ok) third.release();
    await sleep(5);
    expect(counts.activeFor('192.0.2.12')).toBe(2); // the new limiter's release freed only its own slot
    for (const h of held) if (h.ok) h.release();
    await sleep(5);
    expect(counts.total).toBe(0);
  });

  it('counts locally when the primary does not answer in time, and the late grant is given back', async () => {
    const { peers, store, counts } = primaryFor(1, { delayMs: 80 });
    const a = limiter(peers[0]!, store, { timeoutMs: 10 });
    const first = await a.acquire('192.0.2.10');
    expect(first.ok).toBe(true);
    expect(a.activeFor('192.0.2.10')).toBe(1);
    await sleep(150);
    expect(counts.total).toBe(0); // granted late, then released by the note that followed
    for (let i = 0; i < 2; i++) expect((await a.acquire('192.0.2.10')).ok).toBe(true);
    expect(await a.acquire('192.0.2.10')).toEqual({ ok: false, reason: 'max-per-ip' }); // the local limit still applies
  });

  it('refuses by rate after the shared slot was granted, and gives the slot back', async () => {
    const { peers, store, counts } = primaryFor(1);
    const cfg = { ...CONNECTIONS, ratePerIp: 1 };
    const a = limiter(peers[0]!, new IpcCounterStore(peers[0]!, silentLogger), { cfg });
    const first = await a.acquire('192.0.2.11');
    expect(first.ok).toBe(true);
    expect(await a.acquire('192.0.2.11')).toEqual({ ok: false, reason: 'conn-rate' });
    await sleep(5);
    expect(counts.total).toBe(1);
    expect(await store.get('conn:192.0.2.11', 60_000)).toBe(2);
  });
});
