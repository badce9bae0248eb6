/**
 * `node --import tsx bench/floor.ts [--rounds N] [--seconds S] [--warm S]`: CPU per full session
 * (connect + TLS 1.3 handshake, USER/PASS, STAT, QUIT; 8 clients) of four proxies running at once
 * in front of one Dovecot, each round in a fresh random order: the bare node:tls pipe
 * (pipe-proxy.ts), the POP3-aware floor (pop3-floor-proxy.ts: greets, answers USER, logs in to
 * the backend on PASS, relays line by line, and nothing more), and this checkout's gateway at
 * warn without the audit and at info with it. Prints the medians and each one's median ratio to
 * the pipe of the same round.
 *
 * It answers one question the bench cannot: how much of the gateway's cost over the pipe comes
 * from speaking POP3 at all (the floor over the pipe) and how much from the gateway's own
 * design (the gateway over the floor).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openRunScope } from './lib/run-scope.ts';
import { startGatewayProcess } from './lib/gateway-process.ts';
import { startPipeProxy } from './lib/pipe-proxy.ts';
import { startPop3FloorProxy } from './lib/pop3-floor-proxy.ts';
import { startBulkBackend } from './lib/bulk-backend.ts';
import { sessionRate, warmUp, type Target } from './lib/measure.ts';
import { loadAverage } from './lib/proc-stats.ts';
import { median } from './lib/stats.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string' }, seconds: { type: 'string' }, warm: { type: 'string' } } });
const rounds = Number(values.rounds ?? 8);
const seconds = Number(values.seconds ?? 4);
const warmS = Number(values.warm ?? 12);
const log = (l: string) => process.stderr.write(`[floor ${new Date().toISOString().slice(11, 19)}] ${l}\n`);
const BOB = { user: 'bob', password: 'bob-secret' };
const ALICE = { user: 'alice', password: 'alice-secret' };
const KEYS = ['pipe', 'floor', 'warn', 'info'] as const;
type Key = typeof KEYS[number];

const { dir, live, cleanup } = openRunScope('floor', log);
const stops: (() => Promise<void>)[] = [];
try {
  const { dovecot: dc, cert, endpoint } = await startBulkBackend(20, (d) => (live.dovecot = d));
  const pipe = await startPipeProxy(cert.certFile, cert.keyFile, dc.port);
  stops.push(() => pipe.stop());
  const floor = await startPop3FloorProxy(cert.certFile, cert.keyFile, dc.port);
  stops.push(() => floor.stop());
  const gateway = async (level: 'warn' | 'info', audit: boolean) => {
    const g = await startGatewayProcess({ dir: fs.mkdtempSync(path.join(dir, `gw-${level}-`)), backendPort: dc.port,
      certFile: cert.certFile, keyFile: cert.keyFile, level, audit, logToFile: true });
    stops.push(() => g.stop());
    return g;
  };
  const warn = await gateway('warn', false);
  const info = await gateway('info', true);
  const target = (name: Key, port: number, pid: number): Target => ({ name, endpoint: endpoint(port), gatewayPid: pid, dovecotPid: dc.pid });
  const targets: Record<Key, Target> = {
    pipe: target('pipe', pipe.port, pipe.pid), floor: target('floor', floor.port, floor.pid),
    warn: target('warn', warn.ports.pop3s, warn.pid), info: target('info', info.ports.pop3s, info.pid),
  };
  for (const k of KEYS) {
    log(`warm-up of ${k}: ${warmS} s`);
    // The floor relays single-line replies only: no bulk RETR for it.
    await warmUp(targets[k], { credentials: BOB, concurrency: 8, seconds: warmS, noops: 300,
      bulk: k === 'floor' ? null : { credentials: ALICE, mib: 20 } });
  }
  const ms: Record<Key, number[]> = { pipe: [], floor: [], warn: [], info: [] };
  const loads: number[] = [];
  for (let r = 0; r < rounds; r++) {
    loads.push(loadAverage());
    for (const k of [...KEYS].sort(() => Math.random() - 0.5)) {
      const res = await sessionRate(targets[k], BOB, 8, seconds * 1000);
      if (res.errors > 0) throw new Error(`${k}: ${res.errors} session errors (${res.errorSamples.join('; ')})`);
      ms[k].push(res.gatewayCpuMsPerSession ?? NaN);
    }
    log(`round ${r + 1}/${rounds}: ${KEYS.map((k) => `${k} ${ms[k].at(-1)}`).join(', ')} ms/session`);
  }
  const over = (k: Key, base: Key) => median(ms[k].map((x, i) => x / ms[base][i]!)).toFixed(2);
  process.stdout.write([
    `${rounds} rounds of ${seconds} s, warmed ${warmS} s each; load average ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`,
    '| CPU ms per session (median of rounds) | pipe | POP3 floor | gateway warn | gateway info + audit |',
    '|---|---|---|---|---|',
    `| ms | ${KEYS.map((k) => median(ms[k]).toFixed(2)).join(' | ')} |`,
    `| ÷ pipe | 1 | ${over('floor', 'pipe')}× | ${over('warn', 'pipe')}× | ${over('info', 'pipe')}× |`,
    `| ÷ POP3 floor | | 1 | ${over('warn', 'floor')}× | ${over('info', 'floor')}× |`,
    '',
  ].join('\n'));
} finally {
  for (const stop of stops) await stop().catch(() => undefined);
  await cleanup();
}
