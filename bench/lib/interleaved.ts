/**
 * CPU per session, the pipe and both gateway variants side by side: all three run at once in
 * front of one Dovecot, each is warmed, then every round measures each for a few seconds in a
 * fresh random order. The ratios are medians of per-round ratios, so drift on a shared machine
 * (another tenant, a slow minute) falls on all three alike instead of on whichever ran last.
 * On this 2-core machine one sequential window per target varies by ±10 % from run to run;
 * this phase is what the per-session, NOOP and per-GiB rows of the verdict table read.
 *
 * `splitLogging`: a fourth gateway, at info with the audit off, runs its closed-loop sessions in
 * the same rounds (sessions only), so the cost of the info log lines (÷ warn) and of the audit
 * (info + audit ÷ it) are read apart: issue 10 asks ≤ 5 % of CPU per session for each.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { CertFiles } from '../../test/harness/certs.ts';
import type { DovecotInstance } from '../../test/harness/dovecot.ts';
import { startGatewayProcess, type GatewayProcess } from './gateway-process.ts';
import { bulkRetr, noopLatency, sessionRate, warmUp, type Target } from './measure.ts';
import { startPipeProxy, type PipeProxy } from './pipe-proxy.ts';
import { median, round } from './stats.ts';

export type InterleavedKey = 'pipe' | 'warn' | 'info';

export interface InterleavedResult {
  rounds: number;
  seconds: number;
  warmSeconds: number;
  /** CPU ms per session of each round, per target. */
  cpuMsPerSession: Record<InterleavedKey, number[]>;
  sessionsPerSec: Record<InterleavedKey, number[]>;
  /** Sessions per second offered in the paced window of each round (null: no paced window). */
  pacedRate: number | null;
  /** CPU ms per session of each round's paced window, per target: all three at the same rate. */
  pacedCpuMsPerSession: Record<InterleavedKey, number[]>;
  pacedMedian: Record<InterleavedKey, number> | null;
  /** Medians of the per-round ratios at the paced rate (null: no paced window). */
  warnPacedOverPipe: number | null;
  infoPacedOverPipe: number | null;
  /** NOOP round-trip p50 of each round (µs), per target: `noops` sequential NOOPs after the session burst. */
  noopP50Us: Record<InterleavedKey, number[]>;
  noops: number;
  /** CPU s per GiB of a bulk RETR in each round, per target (empty without `bulk`). */
  cpuSPerGiB: Record<InterleavedKey, number[]>;
  bulkMiB: number | null;
  gibMedian: Record<InterleavedKey, number>;
  warnGibOverPipe: number;
  infoGibOverPipe: number;
  median: Record<InterleavedKey, number>;
  noopMedianUs: Record<InterleavedKey, number>;
  /** Medians of the per-round differences, µs. */
  warnNoopOverPipeUs: number;
  infoNoopOverPipeUs: number;
  /** Medians of the per-round ratios. */
  warnOverPipe: number;
  infoOverPipe: number;
  infoOverWarn: number;
  /**
   * With `splitLogging`: CPU ms per session of each round of the gateway at info with the audit
   * off, and the medians of the per-round ratios info (no audit) ÷ warn (the log lines) and
   * info + audit ÷ info (the audit). Absent from runs saved before the split existed.
   */
  logOnlyCpuMsPerSession?: number[];
  logOnlyMedian?: number;
  logOnlyOverWarn?: number;
  infoOverLogOnly?: number;
}

/**
 * Sessions per second of `key` and of the pipe in the same rounds (medians), and the median of
 * the per-round ratios: the closed-loop windows the CPU rows are read from. Computed from the
 * saved per-round figures, so runs saved before this summary existed read the same way.
 */
export function alternatingRate(il: Pick<InterleavedResult, 'sessionsPerSec'>, key: Exclude<InterleavedKey, 'pipe'>):
  { gateway: number; pipe: number; ratio: number } | null {
  const g = il.sessionsPerSec[key];
  const p = il.sessionsPerSec.pipe;
  if (g.length === 0 || g.length !== p.length) return null;
  return { gateway: round(median(g), 1), pipe: round(median(p), 1), ratio: round(median(g.map((x, i) => x / p[i]!)), 3) };
}

export interface InterleavedOptions {
  dir: string;
  dovecot: DovecotInstance;
  cert: CertFiles;
  rounds: number;
  seconds: number;
  warmSeconds: number;
  concurrency: number;
  /** NOOPs per target per round (0: none). */
  noops: number;
  /**
   * Also a window of `seconds` per target per round at this many sessions per second offered
   * (null: none). With a fixed number of clients each proxy runs as fast as it can, and a
   * cheaper one also pays fewer wake-ups per session; at one offered rate the CPU per session
   * compares the work alone.
   */
  pacedRate?: number | null;
  /** A RETR of a `mib` MiB message of `credentials`' mailbox, `repeats` times, per target per round. */
  bulk?: { credentials: { user: string; password: string }; mib: number; repeats: number };
  credentials: { user: string; password: string };
  /** Also a gateway at info with the audit off, sessions only (see the header). */
  splitLogging?: boolean;
  log(line: string): void;
}

export async function interleavedSessions(o: InterleavedOptions): Promise<InterleavedResult> {
  const endpoint = (port: number) => ({ host: '127.0.0.1', port, tls: 'implicit' as const, ca: o.cert.caPem, servername: 'localhost' });
  let pipe: PipeProxy | null = null;
  const gws: GatewayProcess[] = [];
  try {
    pipe = await startPipeProxy(o.cert.certFile, o.cert.keyFile, o.dovecot.port);
    const gw = async (level: 'warn' | 'info', audit: boolean): Promise<GatewayProcess> => {
      const g = await startGatewayProcess({ dir: fs.mkdtempSync(path.join(o.dir, `il-${level}-`)), backendPort: o.dovecot.port,
        certFile: o.cert.certFile, keyFile: o.cert.keyFile, level, audit, logToFile: true });
      gws.push(g);
      return g;
    };
    const warn = await gw('warn', false);
    const info = await gw('info', true);
    const logOnly = o.splitLogging === true ? await gw('info', false) : null;
    const targets: Record<InterleavedKey, Target> = {
      pipe: { name: 'pipe', endpoint: endpoint(pipe.port), gatewayPid: pipe.pid, dovecotPid: o.dovecot.pid },
      warn: { name: 'warn', endpoint: endpoint(warn.ports.pop3s), gatewayPid: warn.pid, dovecotPid: o.dovecot.pid },
      info: { name: 'info', endpoint: endpoint(info.ports.pop3s), gatewayPid: info.pid, dovecotPid: o.dovecot.pid },
    };
    const logOnlyTarget: Target | null = logOnly === null ? null
      : { name: 'info-no-audit', endpoint: endpoint(logOnly.ports.pop3s), gatewayPid: logOnly.pid, dovecotPid: o.dovecot.pid };
    const keys: InterleavedKey[] = ['pipe', 'warn', 'info'];
    // Warmed alike, on the same mix, the fourth one included.
    for (const [name, t] of [...keys.map((k) => [k, targets[k]] as const), ...(logOnlyTarget === null ? [] : [['info, audit off', logOnlyTarget] as const])]) {
      o.log(`interleaved: warm-up of ${name}: ${o.warmSeconds} s of sessions, NOOPs and bulk RETRs`);
      await warmUp(t, { credentials: o.credentials, concurrency: o.concurrency, seconds: o.warmSeconds, noops: Math.min(o.noops, 300),
        bulk: o.bulk === undefined ? null : { credentials: o.bulk.credentials, mib: o.bulk.mib } });
    }
    const logOnlyCpu: number[] = [];
    const cpu: Record<InterleavedKey, number[]> = { pipe: [], warn: [], info: [] };
    const rate: Record<InterleavedKey, number[]> = { pipe: [], warn: [], info: [] };
    const noop: Record<InterleavedKey, number[]> = { pipe: [], warn: [], info: [] };
    const gib: Record<InterleavedKey, number[]> = { pipe: [], warn: [], info: [] };
    const paced: Record<InterleavedKey, number[]> = { pipe: [], warn: [], info: [] };
    const pacedRate = o.pacedRate ?? null;
    for (let r = 0; r < o.rounds; r++) {
      const order: Array<InterleavedKey | 'logOnly'> = [...keys, ...(logOnlyTarget === null ? [] : ['logOnly' as const])].sort(() => Math.random() - 0.5);
      for (const k of order) {
        if (k === 'logOnly') {
          const res = await sessionRate(logOnlyTarget!, o.credentials, o.concurrency, o.seconds * 1000);
          if (res.errors > 0) throw new Error(`interleaved info without audit: ${res.errors} session errors (${res.errorSamples.join('; ')})`);
          logOnlyCpu.push(res.gatewayCpuMsPerSession ?? NaN);
          continue;
        }
        const res = await sessionRate(targets[k], o.credentials, o.concurrency, o.seconds * 1000);
        if (res.errors > 0) throw new Error(`interleaved ${k}: ${res.errors} session errors (${res.errorSamples.join('; ')})`);
        cpu[k].push(res.gatewayCpuMsPerSession ?? NaN);
        rate[k].push(res.perSecond);
        if (pacedRate !== null) {
          const p = await sessionRate(targets[k], o.credentials, o.concurrency, o.seconds * 1000, pacedRate);
          if (p.errors > 0) throw new Error(`interleaved ${k} at ${pacedRate}/s: ${p.errors} session errors (${p.errorSamples.join('; ')})`);
          paced[k].push(p.gatewayCpuMsPerSession ?? NaN);
        }
        if (o.noops > 0) noop[k].push((await noopLatency(targets[k], o.credentials, o.noops, 200)).p50Us);
        if (o.bulk !== undefined) gib[k].push((await bulkRetr(targets[k], o.bulk.credentials, o.bulk.mib, o.bulk.repeats)).gatewayCpuSPerGiB ?? NaN);
      }
      o.log(`interleaved round ${r + 1}/${o.rounds}: ${keys.map((k) => `${k} ${cpu[k].at(-1)} ms/session`).join(', ')}${logOnlyTarget === null ? '' : `, info without audit ${logOnlyCpu.at(-1)} ms/session`}`);
    }
    const ratio = (of: Record<InterleavedKey, number[]>, a: InterleavedKey, b: InterleavedKey) => round(median(of[a].map((x, i) => x / of[b][i]!)), 3);
    const noopOver = (a: InterleavedKey) => round(median(noop[a].map((x, i) => x - noop.pipe[i]!)), 1);
    const gibOver = (a: InterleavedKey) => round(median(gib[a].map((x, i) => x / gib.pipe[i]!)), 3);
    return {
      rounds: o.rounds,
      seconds: o.seconds,
      warmSeconds: o.warmSeconds,
      cpuMsPerSession: cpu,
      sessionsPerSec: rate,
      pacedRate,
      pacedCpuMsPerSession: paced,
      pacedMedian: pacedRate === null ? null : { pipe: round(median(paced.pipe), 2), warn: round(median(paced.warn), 2), info: round(median(paced.info), 2) },
      warnPacedOverPipe: pacedRate === null ? null : ratio(paced, 'warn', 'pipe'),
      infoPacedOverPipe: pacedRate === null ? null : ratio(paced, 'info', 'pipe'),
      noopP50Us: noop,
      noops: o.noops,
      cpuSPerGiB: gib,
      bulkMiB: o.bulk?.mib ?? null,
      gibMedian: { pipe: round(median(gib.pipe), 3), warn: round(median(gib.warn), 3), info: round(median(gib.info), 3) },
      warnGibOverPipe: gibOver('warn'),
      infoGibOverPipe: gibOver('info'),
      noopMedianUs: { pipe: round(median(noop.pipe), 1), warn: round(median(noop.warn), 1), info: round(median(noop.info), 1) },
      warnNoopOverPipeUs: noopOver('warn'),
      infoNoopOverPipeUs: noopOver('info'),
      median: { pipe: round(median(cpu.pipe), 2), warn: round(median(cpu.warn), 2), info: round(median(cpu.info), 2) },
      warnOverPipe: ratio(cpu, 'warn', 'pipe'),
      infoOverPipe: ratio(cpu, 'info', 'pipe'),
      infoOverWarn: ratio(cpu, 'info', 'warn'),
      ...(logOnlyTarget === null ? {} : {
        logOnlyCpuMsPerSession: logOnlyCpu,
        logOnlyMedian: round(median(logOnlyCpu), 2),
        logOnlyOverWarn: round(median(logOnlyCpu.map((x, i) => x / cpu.warn[i]!)), 3),
        infoOverLogOnly: round(median(cpu.info.map((x, i) => x / logOnlyCpu[i]!)), 3),
      }),
    };
  } finally {
    for (const g of gws) await g.stop().catch(() => undefined);
    await pipe?.stop().catch(() => undefined);
  }
}
