/**
 * `npm run bench`: the gateway against the backend directly, in one run.
 *
 * A real Dovecot (test/harness/dovecot.ts) serves plain POP3 and its own
 * implicit TLS; the gateway runs as a child process from its real CLI in front
 * of Dovecot's plain port. Each of Dovecot plain, Dovecot TLS and the gateway
 * (implicit TLS) gets: bulk RETR throughput, full TLS sessions per second (load
 * from a worker thread), NOOP round-trip latency; the gateway also gets memory
 * per idle session. The gateway runs twice: log level warn without audit, then
 * info with the audit file on. Prints a table; writes bench/results/latest.json.
 *
 * Options: --seconds N (sessions/s window, default 8), --concurrency N (8),
 * --big-mib N (100), --repeats N (5), --idle N (500), --noops N (2000),
 * --no-info (skip the info+audit variant), --quick (a short smoke run), --warm N (seconds of
 * unmeasured full sessions, with NOOPs and a bulk RETR twice over, against each proxy before its
 * first measurement, default 12: the steady state of a long-running proxy, not its JIT warm-up;
 * 0 measures a cold process),
 * --profile DIR (run the gateway with --cpu-prof, profiles written to DIR on exit),
 * --interleaved-rounds N / --interleaved-seconds S (CPU per session of the pipe and both variants
 * in N alternating rounds of S s each, all three running at once: lib/interleaved.ts; default 7 × 4 s, 0 skips),
 * --paced-rate N (in each alternating round also S s of sessions at N per second offered to each
 * proxy, so all three run at one rate: default 100, 0 skips),
 * --no-split-logging (skip the fourth gateway of the alternating rounds, at info with the audit
 * off, whose sessions split the info + audit cost into the log lines' and the audit's),
 * --no-reference (skip the reference column: a bare Node TLS pipe proxy, see lib/pipe-proxy.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { makeCert, type CertFiles } from '../test/harness/certs.ts';
import { startDovecot, type DovecotInstance } from '../test/harness/dovecot.ts';
import { openRunScope } from './lib/run-scope.ts';
import { REPO_ROOT, startGatewayProcess, type GatewayProcess } from './lib/gateway-process.ts';
import { collectAndMeasure } from './lib/inspector.ts';
import { startPipeProxy } from './lib/pipe-proxy.ts';
import { interleavedSessions, type InterleavedResult } from './lib/interleaved.ts';
import { bulkMessage } from './lib/mailbox.ts';
import { bulkRetr, idleMemory, noopLatency, sessionRate, warmUp, type Target } from './lib/measure.ts';
import { loadAverage, machineInfo } from './lib/proc-stats.ts';
import { comparisons, ISSUE_TARGETS, renderTable, type BenchResults, type TargetResult } from './lib/report.ts';
import type { Endpoint } from './lib/raw-pop3.ts';

const MiB = 1024 * 1024;
const ALICE = { user: 'alice', password: 'alice-secret' };
const BOB = { user: 'bob', password: 'bob-secret' };

interface Settings {
  seconds: number;
  concurrency: number;
  bigMiB: number;
  smallMiB: number;
  repeats: number;
  smallRepeats: number;
  idle: number;
  idleBatch: number;
  noops: number;
  warmSeconds: number;
  interleavedRounds: number;
  interleavedSeconds: number;
  pacedRate: number;
  splitLogging: boolean;
  infoVariant: boolean;
  reference: boolean;
  profileDir: string | null;
}

function readSettings(): Settings {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' }, concurrency: { type: 'string' }, 'big-mib': { type: 'string' },
      repeats: { type: 'string' }, idle: { type: 'string' }, noops: { type: 'string' },
      'no-info': { type: 'boolean' }, quick: { type: 'boolean' }, profile: { type: 'string' },
      'no-reference': { type: 'boolean' }, warm: { type: 'string' },
      'interleaved-rounds': { type: 'string' }, 'interleaved-seconds': { type: 'string' }, 'paced-rate': { type: 'string' },
      'no-split-logging': { type: 'boolean' },
    },
  });
  const quick = values.quick === true;
  const n = (v: string | undefined, d: number, min: number): number => {
    if (v === undefined) return d;
    const x = Number(v);
    if (!Number.isFinite(x) || x < min) throw new Error(`bad option value ${v} (expected a number >= ${min})`);
    return x;
  };
  return {
    seconds: n(values.seconds, quick ? 2 : 8, 0.5),
    concurrency: n(values.concurrency, 8, 1),
    bigMiB: n(values['big-mib'], quick ? 20 : 100, 1),
    smallMiB: 10,
    repeats: n(values.repeats, quick ? 2 : 5, 1),
    smallRepeats: quick ? 3 : 10,
    idle: n(values.idle, quick ? 100 : 500, 1),
    idleBatch: 50,
    noops: n(values.noops, quick ? 500 : 2000, 10),
    warmSeconds: n(values.warm, quick ? 1 : 12, 0),
    interleavedRounds: n(values['interleaved-rounds'], quick ? 1 : 7, 0),
    interleavedSeconds: n(values['interleaved-seconds'], quick ? 1 : 4, 0.5),
    pacedRate: n(values['paced-rate'], 100, 0),
    splitLogging: values['no-split-logging'] !== true,
    infoVariant: values['no-info'] !== true,
    reference: values['no-reference'] !== true,
    profileDir: values.profile === undefined ? null : path.resolve(values.profile),
  };
}

function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

async function measureTarget(label: string, t: Target, s: Settings): Promise<TargetResult> {
  const ep = `${t.endpoint.tls === 'none' ? 'plain' : t.endpoint.tls} 127.0.0.1:${t.endpoint.port}`;
  if (t.gatewayPid !== null && s.warmSeconds > 0) {
    // A proxy runs for days: what counts is its steady state. A fresh Node process spends its first
    // thousands of sessions compiling (V8 optimises a function only after many calls), and the
    // gateway, with more code on a session's path than the pipe, pays that longer.
    log(`${label}: warm-up, ${s.warmSeconds} s of full sessions with NOOPs and bulk RETRs (not measured)`);
    await warmUp(t, { credentials: BOB, concurrency: s.concurrency, seconds: s.warmSeconds, noops: Math.min(s.noops, 300), bulk: { credentials: ALICE, mib: s.bigMiB } });
  }
  log(`${label}: ${s.noops} NOOPs`);
  const noop = await noopLatency(t, BOB, s.noops, 1000);
  log(`${label}: full sessions for ${s.seconds} s, ${s.concurrency} concurrent`);
  const sessions = await sessionRate(t, BOB, s.concurrency, s.seconds * 1000);
  log(`${label}: RETR ${s.smallMiB} MiB ×${s.smallRepeats}`);
  const bulkSmall = await bulkRetr(t, ALICE, s.smallMiB, s.smallRepeats);
  log(`${label}: RETR ${s.bigMiB} MiB ×${s.repeats}`);
  const bulkBig = await bulkRetr(t, ALICE, s.bigMiB, s.repeats);
  return { label, endpoint: ep, bulkBig, bulkSmall, sessions, noop, idle: null };
}

interface Variant {
  key: string;
  label: string;
  level: 'warn' | 'info';
  audit: boolean;
}

/**
 * Two gateway processes per variant: the first, started with the inspector
 * (for a forced GC and its heap figures), only for memory per idle session on
 * a fresh process; the second, a plain start, for latency, sessions/s and RETR.
 */
async function measureGateway(v: Variant, dir: string, dc: DovecotInstance, cert: CertFiles, s: Settings, notes: string[],
  live: { gateway: GatewayProcess | null }): Promise<TargetResult> {
  const start = async (inspect: boolean): Promise<GatewayProcess> => {
    log(`starting the gateway: level ${v.level}, audit ${v.audit ? 'on' : 'off'}${inspect ? ', inspector on (memory only)' : ''}`);
    const vdir = fs.mkdtempSync(path.join(dir, `${v.key}-`));
    const gw = await startGatewayProcess({
      dir: vdir, backendPort: dc.port, certFile: cert.certFile, keyFile: cert.keyFile, level: v.level, audit: v.audit, inspect, logToFile: true,
      nodeArgs: s.profileDir === null || inspect ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.join(s.profileDir, v.key)}`],
    });
    live.gateway = gw;
    return gw;
  };
  const endpoint = (gw: GatewayProcess): Endpoint => ({ host: '127.0.0.1', port: gw.ports.pop3s, tls: 'implicit', ca: cert.caPem, servername: 'localhost' });
  const finish = async (gw: GatewayProcess): Promise<void> => {
    if (gw.exited()) throw new Error(`the gateway exited during the run:\n${gw.outputTail()}`);
    const warnings = gw.outputTail();
    if (warnings !== '') notes.push(`${v.label} wrote warnings/errors (last lines):\n${warnings}`);
    await gw.stop();
    live.gateway = null;
  };

  const memGw = await start(true);
  log(`${v.label}: ${s.idle} idle TLS connections, handshake only, then logged in`);
  const url = memGw.inspectorUrl!;
  const idle = await idleMemory({ name: v.key, endpoint: endpoint(memGw), gatewayPid: memGw.pid, dovecotPid: dc.pid },
    BOB, s.idle, s.idleBatch, () => collectAndMeasure(url));
  await finish(memGw);

  const gw = await start(false);
  const result = await measureTarget(v.label, { name: v.key, endpoint: endpoint(gw), gatewayPid: gw.pid, dovecotPid: dc.pid }, s);
  result.idle = idle;
  result.gatewayLogLines = gw.logCounts();
  result.auditBytes = gw.auditFile !== null && fs.existsSync(gw.auditFile) ? fs.statSync(gw.auditFile).size : null;
  await finish(gw);
  return result;
}

async function main(): Promise<number> {
  const s = readSettings();
  const started = Date.now();
  const loadAtStart = loadAverage();
  const notes: string[] = [];
  // What is running right now, cleaned up at the end, on an error or on a signal.
  const { dir, live, cleanup } = openRunScope('bench', log);

  try {
    log('starting Dovecot and writing the mailboxes');
    const dc = await startDovecot({ ssl: true });
    live.dovecot = dc;
    dc.addMessage('alice', bulkMessage(s.smallMiB * MiB, 'small'));
    dc.addMessage('alice', bulkMessage(s.bigMiB * MiB, 'big'));
    dc.addMessage('bob', 'From: a@example.org\r\nSubject: hello\r\n\r\nHello Bob.\r\n');
    const cert: CertFiles = await makeCert({ commonName: 'localhost' });
    const tlsEndpoint = (port: number): Endpoint => ({ host: '127.0.0.1', port, tls: 'implicit', ca: cert.caPem, servername: 'localhost' });

    const targets: Record<string, TargetResult> = {};
    targets.dovecotPlain = await measureTarget('Dovecot plain', {
      name: 'dovecotPlain', endpoint: { host: '127.0.0.1', port: dc.port, tls: 'none' }, gatewayPid: null, dovecotPid: dc.pid,
    }, s);
    targets.dovecotTls = await measureTarget('Dovecot TLS', {
      name: 'dovecotTls', endpoint: tlsEndpoint(dc.tlsPort!), gatewayPid: null, dovecotPid: dc.pid,
    }, s);
    if (s.reference) {
      log('starting the reference: a bare Node TLS pipe proxy (a fresh one for memory per idle session first)');
      const memPipe = await startPipeProxy(cert.certFile, cert.keyFile, dc.port);
      let pipeIdle;
      try {
        log(`Node TLS pipe (ref): ${s.idle} idle TLS connections, handshake only, then logged in`);
        pipeIdle = await idleMemory({ name: 'nodePipe', endpoint: tlsEndpoint(memPipe.port), gatewayPid: memPipe.pid, dovecotPid: dc.pid },
          BOB, s.idle, s.idleBatch, null);
      } finally {
        await memPipe.stop();
      }
      const pipe = await startPipeProxy(cert.certFile, cert.keyFile, dc.port);
      try {
        targets.nodePipe = await measureTarget('Node TLS pipe (ref)', {
          name: 'nodePipe', endpoint: tlsEndpoint(pipe.port), gatewayPid: pipe.pid, dovecotPid: dc.pid,
        }, s);
        targets.nodePipe.idle = pipeIdle;
      } finally {
        await pipe.stop();
      }
    }

    const variants: Variant[] = [
      { key: 'gatewayWarn', label: 'gateway (warn)', level: 'warn', audit: false },
    ];
    if (s.infoVariant) variants.push({ key: 'gatewayInfoAudit', label: 'gateway (info+audit)', level: 'info', audit: true });
    let failed = false;
    for (const v of variants) {
      try {
        targets[v.key] = await measureGateway(v, dir, dc, cert, s, notes, live);
      } catch (err) {
        failed = true;
        log(`${v.label} failed: ${(err as Error).stack ?? String(err)}`);
        notes.push(`${v.label} FAILED: ${(err as Error).message.slice(0, 800)}`);
      } finally {
        await live.gateway?.stop();
        live.gateway = null;
      }
    }

    let interleaved: InterleavedResult | null = null;
    if (s.reference && s.infoVariant && s.interleavedRounds > 0) {
      try {
        interleaved = await interleavedSessions({ dir, dovecot: dc, cert, rounds: s.interleavedRounds, seconds: s.interleavedSeconds,
          warmSeconds: s.warmSeconds, concurrency: s.concurrency, noops: Math.min(s.noops, 1000), credentials: BOB, log,
          bulk: { credentials: ALICE, mib: s.bigMiB, repeats: 2 }, pacedRate: s.pacedRate > 0 ? s.pacedRate : null, splitLogging: s.splitLogging });
        notes.push(`CPU per session, alternating rounds: pipe ${interleaved.cpuMsPerSession.pipe.join(' ')}; gateway warn `
          + `${interleaved.cpuMsPerSession.warn.join(' ')}; gateway info+audit ${interleaved.cpuMsPerSession.info.join(' ')} ms `
          + `(${interleaved.rounds} rounds of ${interleaved.seconds} s, random order per round, after ${interleaved.warmSeconds} s warm-up each); `
          + `NOOP p50 µs: pipe ${interleaved.noopP50Us.pipe.join(' ')}; warn ${interleaved.noopP50Us.warn.join(' ')}; info+audit ${interleaved.noopP50Us.info.join(' ')}; `
          + `CPU s per GiB (RETR ${s.bigMiB} MiB ×2): pipe ${interleaved.cpuSPerGiB.pipe.join(' ')}; warn ${interleaved.cpuSPerGiB.warn.join(' ')}; info+audit ${interleaved.cpuSPerGiB.info.join(' ')}`
          + (interleaved.pacedRate === null ? '.' : `; CPU per session at ${interleaved.pacedRate} sessions/s offered: pipe ${interleaved.pacedCpuMsPerSession.pipe.join(' ')}; `
            + `warn ${interleaved.pacedCpuMsPerSession.warn.join(' ')}; info+audit ${interleaved.pacedCpuMsPerSession.info.join(' ')} ms.`)
          + (interleaved.logOnlyCpuMsPerSession === undefined ? '' : ` CPU per session of the gateway at info with the audit off (same rounds): ${interleaved.logOnlyCpuMsPerSession.join(' ')} ms.`));
      } catch (err) {
        failed = true;
        notes.push(`interleaved sessions FAILED: ${(err as Error).message.slice(0, 800)}`);
      }
    }

    notes.push(`load generator: ${s.concurrency} sessions at a time from a worker_threads Worker in the bench process; `
      + 'bulk RETR and NOOP clients run on the bench\'s main thread. Client, gateway and Dovecot share the machine\'s cores.');
    const protocols = Object.values(targets).map((t) => `${t.label}: ${t.sessions.tlsProtocol ?? 'none'}`).join(', ');
    notes.push(s.warmSeconds > 0
      ? `warm-up: ${s.warmSeconds} s of unmeasured full sessions, with NOOPs and a bulk RETR twice over, against each proxy (pipe and gateway) before its measurements (--warm 0: cold).`
      : 'no warm-up (--warm 0): proxies are measured from a cold start, JIT compilation included.');
    notes.push(`TLS: the client verifies the certificate (RSA 2048, test CA), no session resumption; negotiated ${protocols}.`);
    if (s.reference) {
      notes.push('Node TLS pipe (ref): a bare node:tls server (TCP_NODELAY, as the gateway) piping each connection to Dovecot\'s plain port, nothing parsed '
        + '(bench/lib/pipe-proxy.ts); its "gateway CPU" figures are that proxy\'s: the floor for a Node TLS proxy on this machine.');
    }
    notes.push('Dovecot CPU is the whole process tree (master, login, auth, per-session pop3 processes), from /proc.');
    notes.push('idle memory: a separate fresh gateway started with --inspect=127.0.0.1:0, readings after a 1 s settle and a '
      + 'forced full GC; RSS includes OpenSSL and other native memory, heap+ext is V8 heapUsed + external only.');
    const machine = machineInfo();
    const loadAtEnd = loadAverage();
    // The load average counts the bench's own processes too; what others used during the windows does not.
    const others = Object.values(targets).flatMap((t) => [t.sessions.cpu, t.bulkBig.cpu, t.bulkSmall.cpu].map((c) => c.othersS / c.wallS));
    if (others.some((o) => o > 0.2)) {
      notes.unshift(`WARNING: the machine was busy with other work (up to ${Math.max(...others).toFixed(2)} of ${machine.cores} cores used `
        + 'by other processes during the measurements): throughput, rates and latencies are lower and noisier than on a quiet machine.');
    }
    const results: BenchResults = {
      schema: 1,
      startedAt: new Date(started).toISOString(),
      durationS: Math.round((Date.now() - started) / 100) / 10,
      machine,
      loadAverage1m: { start: loadAtStart, end: loadAtEnd },
      settings: { ...s },
      notes,
      targets,
      comparisons: comparisons(targets),
      issueTargets: { ...ISSUE_TARGETS },
      interleaved,
    };
    const outDir = path.join(REPO_ROOT, 'bench', 'results');
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
    process.stdout.write(`${renderTable(results)}\n\nwritten: bench/results/latest.json\n`);
    return failed ? 1 : 0;
  } catch (err) {
    log(`failed: ${(err as Error).stack ?? String(err)}`);
    return 1;
  } finally {
    await cleanup();
  }
}

process.exitCode = await main();
