/**
 * `npm run soak -- --minutes 2`: a bounded soak of the gateway in front of a
 * real Dovecot. Many concurrent workers run sessions of random work (implicit
 * TLS or STLS, wrong passwords, STAT/LIST/UIDL/TOP/RETR/NOOP/RSET/CAPA/DELE,
 * pipelining) with random disconnects, and every reply is checked against the
 * mailbox read from Dovecot directly. At the end, after a settle: the gateway's
 * RSS is back within --rss-tolerance of its warm baseline (taken after a short warm-up at the
 * same concurrency, so what the allocator keeps after such a burst is in it), its V8 heap (after
 * a forced GC, through the inspector) within --heap-tolerance, its open file
 * descriptors are back to baseline, Dovecot has no pop3 session left, the
 * maildirs are unchanged, and there were no mismatches and no unexpected
 * errors. Exit 0 on pass, 1 on fail (with a summary).
 *
 * Options: --minutes N (fractions allowed, default 2), --workers N (50),
 * --messages N per user (15), --seed N, --rss-tolerance PERCENT (30),
 * --heap-tolerance PERCENT (25; the heap is compared after a forced GC),
 * --direct (a control run against Dovecot's own TLS and STLS, no gateway:
 * checks the soak itself).
 */
import { openRunScope } from './lib/run-scope.ts';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { makeCert } from '../test/harness/certs.ts';
import { startDovecot, type DovecotInstance } from '../test/harness/dovecot.ts';
import { startGatewayProcess, type GatewayProcess } from './lib/gateway-process.ts';
import { Rng } from './lib/mailbox.ts';
import { fdCount, rssKiB, treeProcesses } from './lib/proc-stats.ts';
import type { Endpoint } from './lib/raw-pop3.ts';
import { collectAndMeasure } from './lib/inspector.ts';
import { fillMailbox, learnMailbox, mailboxFileNames, type ExpectedMailbox } from './lib/soak-mailbox.ts';
import { newCounters, soakWorker, type SoakCounters } from './lib/soak-session.ts';

interface Options {
  minutes: number;
  workers: number;
  messages: number;
  seed: number;
  rssTolerance: number;
  heapTolerance: number;
  direct: boolean;
}

const USERS = [{ user: 'alice', password: 'alice-secret' }, { user: 'bob', password: 'bob-secret' }];
const FD_SLACK = 2;
/**
 * Dovecot delays every login from an IP for 2–15 s after a failed one from it
 * (auth penalty). Through the gateway every client has the gateway's IP, so the
 * soak's wrong passwords would stall all sessions; with no listener for the
 * penalty socket, Dovecot's auth runs without it.
 */
const NO_AUTH_PENALTY = 'service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}';
const SETTLE_MS = 20_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function readOptions(): Options {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string' }, workers: { type: 'string' }, messages: { type: 'string' },
      seed: { type: 'string' }, 'rss-tolerance': { type: 'string' },
      'heap-tolerance': { type: 'string' }, direct: { type: 'boolean' },
    },
  });
  const n = (v: string | undefined, d: number, min: number, max: number): number => {
    if (v === undefined) return d;
    const x = Number(v);
    if (!Number.isFinite(x) || x < min || x > max) throw new Error(`bad option value ${v} (expected ${min}..${max})`);
    return x;
  };
  return {
    minutes: n(values.minutes, 2, 0.05, 60),
    workers: Math.round(n(values.workers, 50, 1, 500)),
    messages: Math.round(n(values.messages, 15, 1, 100)),
    seed: Math.round(n(values.seed, Date.now() % 1e9, 0, 2 ** 32 - 1)),
    rssTolerance: n(values['rss-tolerance'], 30, 0, 1000),
    heapTolerance: n(values['heap-tolerance'], 25, 0, 1000),
    direct: values.direct === true,
  };
}

function log(line: string): void {
  process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

const pop3Processes = (dc: DovecotInstance) => treeProcesses(dc.pid).filter((p) => p.comm === 'pop3');
const pop3Sessions = (dc: DovecotInstance): number => pop3Processes(dc).length;

/** Why a pop3 process is still there: its state, sockets, and Dovecot's last log lines. */
function describeLeftovers(dc: DovecotInstance): string {
  const lines = pop3Processes(dc).map((p) => {
    let fds = '';
    try {
      fds = fs.readdirSync(`/proc/${p.pid}/fd`).map((fd) => fs.readlinkSync(`/proc/${p.pid}/fd/${fd}`)).join(' ');
    } catch (err) {
      fds = `(fds unreadable: ${(err as Error).message})`;
    }
    let wchan = '';
    try {
      wchan = fs.readFileSync(`/proc/${p.pid}/wchan`, 'utf8');
    } catch (err) {
      wchan = `(${(err as Error).message})`;
    }
    return `pid ${p.pid} state ${p.state} wchan ${wchan} fds ${fds}`;
  });
  const log = dc.readLog().split('\n').filter((l) => l !== '').slice(-15);
  return [...lines, '--- dovecot log tail ---', ...log].join('\n');
}

/** The process whose RSS and fds are watched: the gateway, or none in a --direct run. */
interface Watched {
  pid: number | null;
}

const rssOf = (w: Watched): number => (w.pid === null ? 0 : rssKiB(w.pid));
const fdsOf = (w: Watched): number => (w.pid === null ? 0 : fdCount(w.pid));

async function runWorkers(seedBase: number, w: Watched, endpoints: { implicit: Endpoint; starttls: Endpoint },
  mailboxes: ExpectedMailbox[], minutes: number, workers: number, counters: SoakCounters): Promise<{ peakRssKiB: number; peakFds: number }> {
  const until = { time: Date.now() + minutes * 60_000 };
  let peakRssKiB = 0;
  let peakFds = 0;
  let lastReport = Date.now();
  const sampler = setInterval(() => {
    try {
      peakRssKiB = Math.max(peakRssKiB, rssOf(w));
      peakFds = Math.max(peakFds, fdsOf(w));
    } catch (err) {
      // The gateway is gone: stop the workers; the end checks report it.
      if (until.time > 0) log(`cannot read the gateway's /proc entries (${(err as Error).message}); stopping the workers`);
      until.time = 0;
      return;
    }
    if (Date.now() - lastReport >= 15_000) {
      lastReport = Date.now();
      log(`${counters.sessions} sessions, ${counters.retrVerified} RETRs verified, ${counters.mismatches} mismatches, `
        + `${counters.unexpectedErrors} errors; gateway RSS ${(rssOf(w) / 1024).toFixed(0)} MiB, ${fdsOf(w)} fds`);
    }
  }, 250);
  try {
    const all = Promise.all(Array.from({ length: workers }, (_, i) => soakWorker({
      rng: new Rng(seedBase + i * 7919), endpoints, mailboxes, counters, until,
    })));
    // Workers finish their current session after the deadline; a session is bounded by its timeouts.
    const hardStop = new Promise<never>((_, reject) => {
      const timer = setTimeout(() => reject(new Error('workers did not finish within 90 s of the deadline')), minutes * 60_000 + 90_000);
      all.then(() => clearTimeout(timer), () => clearTimeout(timer));
    });
    await Promise.race([all, hardStop]);
  } finally {
    clearInterval(sampler);
  }
  return { peakRssKiB, peakFds };
}

async function main(): Promise<number> {
  const opts = readOptions();
  // What is running right now, cleaned up at the end, on an error or on a signal.
  const { dir, live, cleanup } = openRunScope('soak', log);

  try {
    log(`seed ${opts.seed}, ${opts.workers} workers, ${opts.minutes} min, ${opts.messages} messages per user`);
    const dc = await startDovecot({ ssl: opts.direct, extraConfig: NO_AUTH_PENALTY });
    live.dovecot = dc;
    const rng = new Rng(opts.seed);
    const plain: Endpoint = { host: '127.0.0.1', port: dc.port, tls: 'none' };
    const mailboxes: ExpectedMailbox[] = [];
    for (const u of USERS) {
      const written = fillMailbox(dc, u.user, opts.messages, rng);
      mailboxes.push(await learnMailbox(plain, u.user, u.password, written));
    }
    const filesBefore = USERS.map((u) => mailboxFileNames(dc, u.user).join('\n'));
    const totalMiB = mailboxes.reduce((a, m) => a + m.totalOctets, 0) / 2 ** 20;
    log(`mailboxes ready: ${mailboxes.map((m) => `${m.user} ${m.messages.length} messages`).join(', ')}, ${totalMiB.toFixed(1)} MiB; checked against Dovecot directly`);

    const cert = await makeCert({ commonName: 'localhost' });
    const tlsEp = (port: number, mode: 'implicit' | 'starttls'): Endpoint => ({ host: '127.0.0.1', port, tls: mode, ca: cert.caPem, servername: 'localhost' });
    let endpoints: { implicit: Endpoint; starttls: Endpoint };
    let gw: GatewayProcess | null = null;
    if (opts.direct) {
      endpoints = { implicit: tlsEp(dc.tlsPort!, 'implicit'), starttls: tlsEp(dc.port, 'starttls') };
      log('--direct: control run against Dovecot itself, no gateway');
    } else {
      gw = await startGatewayProcess({
        dir, backendPort: dc.port, certFile: cert.certFile, keyFile: cert.keyFile, level: 'warn', audit: true, inspect: true,
        // Wrong passwords are part of the load: no lockout may turn a right one into -ERR [AUTH].
        policy: { auth: { maxFailuresPerIp: 1_000_000, maxFailuresPerUser: 1_000_000 } },
      });
      live.gateway = gw;
      endpoints = { implicit: tlsEp(gw.ports.pop3s, 'implicit'), starttls: tlsEp(gw.ports.pop3, 'starttls') };
    }
    const watched: Watched = { pid: gw?.pid ?? null };
    const startRss = rssOf(watched);

    // Warm-up, then the baseline the end state is compared with. At the load's own concurrency:
    // the allocator keeps much of what a burst of that many TLS sessions needed (glibc arenas,
    // OpenSSL), and a baseline taken after 5 workers left that in the "growth" the end is judged
    // on (+23 to +29 MiB after 50 workers, the same with and without a leak), so a gateway with a
    // smaller start-up heap failed a check meant for leaks.
    const warm = newCounters();
    await runWorkers(opts.seed + 1, watched, endpoints, mailboxes, Math.min(0.1, opts.minutes / 4), opts.workers, warm);
    await sleep(1500);
    const baseHeap = gw === null ? null : await heapKiB(gw);
    await sleep(1000);
    const baseRss = rssOf(watched);
    const baseFds = fdsOf(watched);
    if (gw !== null) log(`gateway pid ${gw.pid}: RSS ${(startRss / 1024).toFixed(1)} MiB at start, ${(baseRss / 1024).toFixed(1)} MiB warm; ${baseFds} fds`);

    const counters = newCounters();
    const t0 = Date.now();
    const peaks = await runWorkers(opts.seed, watched, endpoints, mailboxes, opts.minutes, opts.workers, counters);
    const ranS = (Date.now() - t0) / 1000;
    log('workers done; settling');
    if (gw?.exited() === true) throw new Error(`the gateway exited during the soak:\n${gw.outputTail()}`);

    const rssLimit = baseRss * (1 + opts.rssTolerance / 100);
    const settleStart = Date.now();
    // Wait for connections to close; RSS is judged after the forced GC below, like the baseline.
    while (Date.now() - settleStart < (opts.direct ? 3000 : SETTLE_MS) && (fdsOf(watched) > baseFds + FD_SLACK || pop3Sessions(dc) > 0)) {
      await sleep(250);
    }
    // The same order as the baseline: a forced GC (heap reading), then RSS.
    const endHeap = gw === null ? null : await heapKiB(gw);
    await sleep(1000);
    const endRss = rssOf(watched);
    const endFds = fdsOf(watched);
    const endPop3 = pop3Sessions(dc);
    const heapLimit = baseHeap === null ? null : baseHeap * (1 + opts.heapTolerance / 100);
    const settleS = (Date.now() - settleStart) / 1000;

    const failures: string[] = [];
    if (counters.mismatches > 0) failures.push(`${counters.mismatches} replies differed from the backend's data`);
    if (counters.unexpectedErrors + warm.unexpectedErrors + warm.mismatches > 0) {
      failures.push(`${counters.unexpectedErrors + warm.unexpectedErrors + warm.mismatches} unexpected errors (incl. warm-up)`);
    }
    if (gw?.exited() === true) failures.push('the gateway exited');
    if (endRss > rssLimit) failures.push(`gateway RSS ${(endRss / 1024).toFixed(1)} MiB is above ${(rssLimit / 1024).toFixed(1)} MiB (warm baseline + ${opts.rssTolerance}%)`);
    if (endHeap !== null && heapLimit !== null && endHeap > heapLimit) {
      failures.push(`gateway heap+external after GC ${(endHeap / 1024).toFixed(1)} MiB is above ${(heapLimit / 1024).toFixed(1)} MiB (warm baseline + ${opts.heapTolerance}%)`);
    }
    if (endFds > baseFds + FD_SLACK) failures.push(`gateway has ${endFds} open fds, baseline ${baseFds} (+${FD_SLACK} allowed)`);
    const notes: string[] = [];
    if (endPop3 > 0) {
      // Through the gateway, Dovecot's pop3 processes hold plain TCP connections from the gateway: one left means
      // the gateway kept a backend connection open. In a --direct run they sit behind Dovecot's own TLS proxy
      // (pop3-login), which now and then keeps one for a while after the client is gone: reported, not failed.
      const what = `Dovecot still has ${endPop3} pop3 session processes`;
      if (opts.direct) notes.push(`${what} (Dovecot's TLS proxy; not counted in a --direct run)`);
      else failures.push(`${what}: backend connections left open by the gateway`);
      log(describeLeftovers(dc));
    }
    const filesAfter = USERS.map((u) => mailboxFileNames(dc, u.user).join('\n'));
    if (filesAfter.some((f, i) => f !== filesBefore[i])) failures.push('the maildirs changed: a DELE took effect without QUIT');
    for (const [i, u] of USERS.entries()) {
      const again = await learnMailbox(plain, u.user, u.password, mailboxes[i]!.messages.map((m) => m.content)).catch((err: Error) => err);
      if (again instanceof Error) failures.push(`after the soak, ${u.user}'s mailbox no longer reads back: ${again.message}`);
      else if (again.uidlBody !== mailboxes[i]!.uidlBody) failures.push(`after the soak, ${u.user}'s UIDL list changed`);
    }
    const events = gw?.eventCounts() ?? {};
    const crashes = Object.entries(events).filter(([k]) => /uncaught|unhandled|fatal/i.test(k));
    if (crashes.length > 0) failures.push(`gateway logged ${crashes.map(([k, n]) => `${n}× ${k}`).join(', ')}`);

    const summary = {
      result: failures.length === 0 ? 'PASS' : 'FAIL',
      seed: opts.seed,
      workers: opts.workers,
      minutes: opts.minutes,
      ranSeconds: Math.round(ranS),
      ...counters,
      samples: undefined,
      retrMiB: Math.round(counters.retrOctets / 2 ** 20),
      sessionsPerSec: Math.round(counters.sessions / ranS),
      direct: opts.direct,
      gateway: gw === null ? null : {
        rssMiB: { start: mib(startRss), warmBaseline: mib(baseRss), peak: mib(peaks.peakRssKiB), end: mib(endRss), limit: mib(rssLimit) },
        heapExternalAfterGcMiB: { warmBaseline: mibOrNull(baseHeap), end: mibOrNull(endHeap), limit: mibOrNull(heapLimit) },
        fds: { baseline: baseFds, peak: peaks.peakFds, end: endFds },
        settleSeconds: Math.round(settleS * 10) / 10,
        logLinesByLevel: gw.logCounts(),
        warnAndAbove: events,
      },
      dovecotPop3ProcessesAtEnd: endPop3,
      failures,
      notes,
      errorSamples: [...warm.samples, ...counters.samples],
    };
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    log(failures.length === 0 ? 'PASS' : `FAIL:\n  ${failures.join('\n  ')}`);
    return failures.length === 0 ? 0 : 1;
  } catch (err) {
    log(`FAIL: ${(err as Error).stack ?? String(err)}`);
    return 1;
  } finally {
    await cleanup();
  }
}

const mib = (kib: number): number => Math.round((kib / 1024) * 10) / 10;
const mibOrNull = (kib: number | null): number | null => (kib === null ? null : mib(kib));

/** V8 heap used + external of the gateway after a forced full GC, KiB. */
async function heapKiB(gw: GatewayProcess): Promise<number> {
  const m = await collectAndMeasure(gw.inspectorUrl!);
  return (m.heapUsed + m.external) / 1024;
}

process.exitCode = await main();
