/**
 * The four measurements, each against one endpoint: bulk RETR throughput, full
 * sessions per second, NOOP round trips, and gateway memory per idle session.
 * CPU and RSS come from /proc for the processes we started.
 */
import { CpuWindow, fdCount, pssKiB, rssKiB, RssSampler, type CpuUse } from './proc-stats.ts';
import { RawPop3, type Endpoint } from './raw-pop3.ts';
import { runSessionLoad, type SessionLoadResult } from './session-load.ts';
import { percentile, round } from './stats.ts';

export interface Target {
  name: string;
  endpoint: Endpoint;
  /** The gateway's PID when the target goes through it. */
  gatewayPid: number | null;
  dovecotPid: number;
}

export interface Credentials {
  user: string;
  password: string;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Message number of the first message whose LIST size is at least `minOctets`. */
async function findMessage(c: RawPop3, minOctets: number, maxOctets: number): Promise<number> {
  const { body } = await c.multiline('LIST', true);
  for (const line of body?.body?.toString('latin1').split('\r\n') ?? []) {
    const [n, size] = line.split(' ').map(Number);
    if (n !== undefined && size !== undefined && size >= minOctets && size <= maxOctets) return n;
  }
  throw new Error(`no message between ${minOctets} and ${maxOctets} octets in the mailbox`);
}

export interface BulkResult {
  messageMiB: number;
  repeats: number;
  octets: number;
  seconds: number;
  mibPerSec: number;
  gatewayCpuS: number | null;
  gatewayCpuSPerGiB: number | null;
  gatewayRssBeforeMiB: number | null;
  gatewayPeakRssMiB: number | null;
  cpu: CpuUse;
}

/** One logged-in session RETRs the message of about `sizeMiB` `repeats` times (after one unmeasured RETR). */
export async function bulkRetr(t: Target, cred: Credentials, sizeMiB: number, repeats: number): Promise<BulkResult> {
  const c = await RawPop3.connect(t.endpoint);
  try {
    await c.login(cred.user, cred.password);
    const n = await findMessage(c, sizeMiB * MiB * 0.95, sizeMiB * MiB * 1.1);
    await retrOnce(c, n); // warm-up: page cache, JIT, Dovecot's index
    const pid = t.gatewayPid;
    const rssBefore = pid === null ? null : rssKiB(pid);
    const sampler = pid === null ? null : new RssSampler(pid, 50);
    const window = new CpuWindow(pid, t.dovecotPid);
    let octets = 0;
    for (let i = 0; i < repeats; i++) octets += await retrOnce(c, n);
    const cpu = window.end();
    const seconds = cpu.wallS;
    const gwCpu = cpu.gatewayS;
    const peak = sampler?.stop() ?? null;
    await c.quit();
    return {
      messageMiB: sizeMiB,
      repeats,
      octets,
      seconds: round(seconds, 3),
      mibPerSec: round(octets / MiB / seconds, 1),
      gatewayCpuS: gwCpu === null ? null : round(gwCpu, 2),
      gatewayCpuSPerGiB: gwCpu === null ? null : round(gwCpu / (octets / GiB), 2),
      gatewayRssBeforeMiB: rssBefore === null ? null : round(rssBefore / 1024, 1),
      gatewayPeakRssMiB: peak === null ? null : round(peak / 1024, 1),
      cpu: roundCpu(cpu),
    };
  } finally {
    c.destroy();
  }
}

function roundCpu(c: CpuUse): CpuUse {
  return {
    wallS: round(c.wallS, 2), gatewayS: c.gatewayS === null ? null : round(c.gatewayS, 2), dovecotS: round(c.dovecotS, 2),
    benchS: round(c.benchS, 2), othersS: round(c.othersS, 2),
  };
}

async function retrOnce(c: RawPop3, n: number): Promise<number> {
  const { status, body } = await c.withTimeout(c.multiline(`RETR ${n}`), 60_000, `RETR ${n}`);
  if (body === null) throw new Error(`RETR ${n} answered: ${status}`);
  return body.octets;
}

export interface SessionRateResult extends SessionLoadResult {
  concurrency: number;
  gatewayCpuMsPerSession: number | null;
  dovecotCpuMsPerSession: number;
  cpu: CpuUse;
}

/** Full sessions from `concurrency` clients for `durationMs`: as fast as they go, or `ratePerSecond` in all. */
export async function sessionRate(t: Target, cred: Credentials, concurrency: number, durationMs: number, ratePerSecond?: number): Promise<SessionRateResult> {
  let window: CpuWindow | null = null;
  let cpu: CpuUse | null = null;
  const r = await runSessionLoad(
    { endpoint: t.endpoint, user: cred.user, password: cred.password, concurrency, durationMs, ratePerSecond },
    () => (window = new CpuWindow(t.gatewayPid, t.dovecotPid)),
    () => (cpu = window!.end()),
  );
  const used = cpu as CpuUse | null;
  if (used === null) throw new Error('session load ended without a CPU reading');
  const perSession = (s: number) => round((s * 1000) / Math.max(1, r.sessions), 2);
  return {
    ...r,
    elapsedMs: round(r.elapsedMs, 0),
    perSecond: round(r.perSecond, 1),
    p50Ms: round(r.p50Ms, 2),
    p99Ms: round(r.p99Ms, 2),
    concurrency,
    gatewayCpuMsPerSession: used.gatewayS === null ? null : perSession(used.gatewayS),
    dovecotCpuMsPerSession: perSession(used.dovecotS),
    cpu: roundCpu(used),
  };
}

export interface NoopResult {
  count: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
}

export interface WarmUpOptions {
  credentials: Credentials;
  concurrency: number;
  /** Seconds of full sessions in all (half before and half after the first bulk RETR). */
  seconds: number;
  /** NOOPs per pass (0: none). */
  noops: number;
  /** A RETR of a `mib` MiB message of `credentials`' mailbox per pass (null: none). */
  bulk: { credentials: Credentials; mib: number } | null;
}

/**
 * Unmeasured work against a proxy before it is measured: the same mix the measurement runs
 * (full sessions, NOOPs, a bulk RETR), twice over. A proxy runs for days on all of it; V8 compiles
 * each hot function for the objects it has seen so far, so a process warmed on sessions alone
 * recompiles part of its session path (stream internals, the reply path) after its first bulk
 * relay and again in the next sessions (seen with --trace-deopt: "wrong map" deopts of Node's
 * stream functions after each of the first bulk RETRs, none from the third on).
 */
export async function warmUp(t: Target, o: WarmUpOptions): Promise<void> {
  for (let pass = 0; pass < 2; pass++) {
    await sessionRate(t, o.credentials, o.concurrency, Math.max(250, o.seconds * 500));
    if (o.noops > 0) await noopLatency(t, o.credentials, o.noops, 0);
    if (o.bulk !== null) await bulkRetr(t, o.bulk.credentials, o.bulk.mib, 1);
  }
  // The measured order starts with sessions: end on them too, so none is first after a RETR.
  await sessionRate(t, o.credentials, o.concurrency, 500);
}

/** `count` sequential NOOPs on one logged-in session, after `warmup` unmeasured ones. */
export async function noopLatency(t: Target, cred: Credentials, count: number, warmup = 200): Promise<NoopResult> {
  const c = await RawPop3.connect(t.endpoint);
  try {
    await c.login(cred.user, cred.password);
    for (let i = 0; i < warmup; i++) await c.ok('NOOP');
    const us: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = process.hrtime.bigint();
      await c.ok('NOOP');
      us.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    await c.quit();
    const mean = us.reduce((a, b) => a + b, 0) / us.length;
    us.sort((a, b) => a - b);
    return { count, p50Us: round(percentile(us, 0.5), 1), p99Us: round(percentile(us, 0.99), 1), meanUs: round(mean, 1) };
  } finally {
    c.destroy();
  }
}

/** A memory reading; heap figures only when the gateway was started with the inspector. */
export interface MemoryPoint {
  rssKiB: number;
  /** Proportional set size (smaps_rollup), null where unreadable. */
  pssKiB: number | null;
  /** V8 heap used + external (incl. ArrayBuffers) after a forced full GC, KiB. */
  heapExternalKiB: number | null;
  fds: number;
}

export interface IdleMemoryResult {
  sessions: number;
  /** Readings: before, with N handshake-only connections, with them logged in, after closing them all. */
  before: MemoryPoint;
  handshake: MemoryPoint;
  loggedIn: MemoryPoint;
  afterClose: MemoryPoint;
  /** RSS growth per connection: handshake only; whole logged-in session (TLS included); what login added. */
  kibPerHandshakeOnly: number;
  kibPerLoggedIn: number;
  kibLoginIncrement: number;
  /** PSS growth per logged-in session (null without smaps_rollup). */
  pssKibPerLoggedIn: number | null;
  /** The same from heap+external after a forced GC (null without the inspector). */
  heapKibPerHandshakeOnly: number | null;
  heapKibPerLoggedIn: number | null;
  fdsPerHandshakeOnly: number;
  fdsPerLoggedIn: number;
}

export type HeapProbe = () => Promise<{ heapUsed: number; external: number }>;

async function memoryPoint(pid: number, probe: HeapProbe | null, settleMs: number): Promise<MemoryPoint> {
  await sleep(settleMs);
  let heapExternalKiB: number | null = null;
  if (probe !== null) {
    const m = await probe(); // a full GC first
    heapExternalKiB = Math.round((m.heapUsed + m.external) / 1024);
    await sleep(200);
  }
  return { rssKiB: rssKiB(pid), pssKiB: pssKiB(pid), heapExternalKiB, fds: fdCount(pid) };
}

/**
 * On a fresh gateway: opens `count` TLS connections (in batches of `batch`)
 * that stop after the handshake and greeting, takes a reading after a settle;
 * logs them all in, reads again; then closes them and reads once more. With a
 * probe (the inspector), each reading also forces a full GC and records the heap.
 */
export async function idleMemory(t: Target, cred: Credentials, count: number, batch: number, probe: HeapProbe | null, settleMs = 1000): Promise<IdleMemoryResult> {
  const pid = t.gatewayPid;
  if (pid === null) throw new Error('idleMemory needs a gateway target');
  const before = await memoryPoint(pid, probe, settleMs);
  const clients: RawPop3[] = [];
  const inBatches = async (work: (i: number) => Promise<void>) => {
    for (let i = 0; i < count; i += batch) {
      await Promise.all(Array.from({ length: Math.min(batch, count - i) }, (_, j) => work(i + j)));
    }
  };
  try {
    await inBatches(async () => {
      clients.push(await RawPop3.connect(t.endpoint));
    });
    const handshake = await memoryPoint(pid, probe, settleMs);
    await inBatches((i) => clients[i]!.login(cred.user, cred.password));
    const loggedIn = await memoryPoint(pid, probe, settleMs);
    await Promise.all(clients.map((c) => c.quit().catch(() => c.destroy())));
    clients.length = 0;
    const afterClose = await memoryPoint(pid, probe, settleMs);
    const per = (a: number, b: number) => round((b - a) / count, 1);
    const heapPer = (a: MemoryPoint, b: MemoryPoint) =>
      a.heapExternalKiB === null || b.heapExternalKiB === null ? null : per(a.heapExternalKiB, b.heapExternalKiB);
    return {
      sessions: count,
      before, handshake, loggedIn, afterClose,
      kibPerHandshakeOnly: per(before.rssKiB, handshake.rssKiB),
      kibPerLoggedIn: per(before.rssKiB, loggedIn.rssKiB),
      kibLoginIncrement: per(handshake.rssKiB, loggedIn.rssKiB),
      pssKibPerLoggedIn: before.pssKiB === null || loggedIn.pssKiB === null ? null : per(before.pssKiB, loggedIn.pssKiB),
      heapKibPerHandshakeOnly: heapPer(before, handshake),
      heapKibPerLoggedIn: heapPer(before, loggedIn),
      fdsPerHandshakeOnly: round((handshake.fds - before.fds) / count, 2),
      fdsPerLoggedIn: round((loggedIn.fds - before.fds) / count, 2),
    };
  } finally {
    for (const c of clients) c.destroy();
  }
}
