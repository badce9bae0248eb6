/**
 * `node --import tsx bench/warm-profile.ts [--who gateway|pipe] [--kind cpu|alloc|survivors] [--work sessions|noop|bulk] [--bulk-before N] [--level info|warn] [--no-audit] [--warm S] [--seconds S] [--top N] [--out FILE]`:
 * a profile of a warmed proxy doing full sessions (8 concurrent) or sequential NOOPs on one
 * logged-in session (`--work noop`, 20 000 per --seconds 5) or RETRs of a 100 MiB message (`--work
 * bulk`, --seconds of them), taken through the inspector
 * after `--warm` seconds of unmeasured sessions, so it shows the steady state rather than the
 * JIT's first seconds (`--cpu-prof` profiles from process start).
 *
 * - `cpu`: V8's CPU profile (saved as .cpuprofile; read again with profile-top.ts).
 * - `alloc`: where the proxy allocates, per session: V8's sampling heap profiler with collected
 *   objects included, by the innermost frame of ours (src/...) or a package, and by call site.
 * - `survivors`: the same without what died young: what the scavenger had to copy, the part of
 *   allocation that costs in a garbage-collected heap.
 *
 * `--bulk-before N`: N RETRs of the mailbox's big message after the warm-up, before the profile,
 * as in the bench's rounds, where the NOOPs follow the previous round's bulk RETRs.
 *
 * Measured this way (info + audit, warm): the gateway allocated 148 KiB per session against the
 * pipe's 33 KiB, and had 27 KiB survive a scavenge against 16 KiB.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { openRunScope } from './lib/run-scope.ts';
import { startBulkBackend, startProxy } from './lib/bulk-backend.ts';
import { allocationsDuring, profileDuring } from './lib/inspector.ts';
import { bulkRetr, noopLatency, sessionRate } from './lib/measure.ts';

const { values } = parseArgs({ options: {
  who: { type: 'string' }, kind: { type: 'string' }, level: { type: 'string' }, 'no-audit': { type: 'boolean' },
  warm: { type: 'string' }, seconds: { type: 'string' }, top: { type: 'string' }, out: { type: 'string' }, work: { type: 'string' },
  'bulk-before': { type: 'string' },
} });
const work = values.work === 'noop' || values.work === 'bulk' ? values.work : 'sessions';
const who = values.who === 'pipe' ? 'pipe' : 'gateway';
const kind = values.kind === 'alloc' || values.kind === 'survivors' ? values.kind : 'cpu';
const level = values.level === 'warn' ? 'warn' : 'info';
const audit = values['no-audit'] !== true;
const warmS = Number(values.warm ?? 12);
const seconds = Number(values.seconds ?? (kind === 'cpu' ? 8 : 5));
const top = Number(values.top ?? 30);
const out = path.resolve(values.out ?? `.bench/warm-${who}-${work}-${kind}.${kind === 'cpu' ? 'cpuprofile' : 'heapprofile'}`);
const log = (l: string) => process.stderr.write(`[warm-profile ${new Date().toISOString().slice(11, 19)}] ${l}\n`);
const BOB = { user: 'bob', password: 'bob-secret' };
const ALICE = { user: 'alice', password: 'alice-secret' };

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

/** Allocated bytes per session by owner (innermost frame of ours or a package) and by site (with 3 callers). */
function printAllocations(profile: { head: HeapNode }, units: number): void {
  const owner = (cf: HeapNode['callFrame']): string | null => {
    const src = /\/(?:dist\/)?src\/(.+?)(?:\.[jt]s)?$/.exec(cf.url);
    if (src !== null) return `${src[1]}: ${cf.functionName || '(anonymous)'}`;
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(cf.url);
    return pkg === null ? null : `package ${pkg[1]}`;
  };
  const site = (cf: HeapNode['callFrame']): string => `${cf.functionName || '(anonymous)'} ${cf.url.replace(/^.*\/(node_modules\/|src\/)/, '$1')}:${cf.lineNumber + 1}`;
  const byOwner = new Map<string, number>();
  const bySite = new Map<string, number>();
  let total = 0;
  const walk = (n: HeapNode, own: string, stack: string[]): void => {
    const o = owner(n.callFrame) ?? own;
    const here = [...stack, site(n.callFrame)];
    if (n.selfSize > 0) {
      total += n.selfSize;
      byOwner.set(o, (byOwner.get(o) ?? 0) + n.selfSize);
      const key = here.slice(-4).reverse().join(' < ');
      bySite.set(key, (bySite.get(key) ?? 0) + n.selfSize);
    }
    for (const c of n.children) walk(c, o, here);
  };
  walk(profile.head, '(Node itself: no frame of ours or a package)', []);
  const kib = (b: number) => `${(b / units / 1024).toFixed(2).padStart(6)} KiB`;
  const unit = work === 'noop' ? 'NOOP' : work === 'bulk' ? 'MiB relayed' : 'session';
  process.stdout.write(`${who}: ${units} ${unit}s, ${(total / units / 1024).toFixed(1)} KiB ${kind === 'alloc' ? 'allocated' : 'surviving a scavenge'} per ${unit} (sampled)\n-- by owner\n`);
  for (const [k, b] of [...byOwner].sort((a, c) => c[1] - a[1]).slice(0, top)) process.stdout.write(`${kib(b)}  ${k}\n`);
  process.stdout.write('-- by site\n');
  for (const [k, b] of [...bySite].sort((a, c) => c[1] - a[1]).slice(0, top)) process.stdout.write(`${kib(b)}  ${k.slice(0, 240)}\n`);
}

const { dir, live, cleanup } = openRunScope('warm-profile', log);
try {
  const bulkBefore = Number(values['bulk-before'] ?? 0);
  const backend = await startBulkBackend(work === 'bulk' || bulkBefore > 0 ? 100 : 1, (d) => (live.dovecot = d));
  const { target, inspectorUrl: url, stop } = await startProxy(who, backend, { dir, nodeArgs: [], level, audit, live, inspect: true, logToFile: true });
  if (url === null) throw new Error(`${who}: started without an inspector URL`);
  const inspectorUrl = url;
  log(`${who}: warm-up, ${warmS} s of full sessions`);
  await sessionRate(target, BOB, 8, warmS * 1000);
  const noops = Math.round(seconds * 4000);
  if (bulkBefore > 0) {
    log(`${who}: ${bulkBefore} RETR of 100 MiB before the profile`);
    await bulkRetr(target, ALICE, 100, bulkBefore);
  }
  if (work === 'noop') await noopLatency(target, BOB, 2000, 0);
  if (work === 'bulk') await bulkRetr(target, ALICE, 100, 1);
  log(`${who}: ${kind} profile over ${work === 'noop' ? `${noops} NOOPs` : work === 'bulk' ? `RETR of 100 MiB ×${Math.max(1, Math.round(seconds))}` : `${seconds} s of full sessions`}`);
  const run = async (): Promise<{ units: number; summary: string }> => {
    if (work === 'noop') {
      const r = await noopLatency(target, BOB, noops, 0);
      return { units: noops, summary: `NOOP p50 ${r.p50Us} µs` };
    }
    if (work === 'bulk') {
      const r = await bulkRetr(target, ALICE, 100, Math.max(1, Math.round(seconds)));
      return { units: r.octets / 2 ** 20, summary: `${r.gatewayCpuSPerGiB} CPU s per GiB` };
    }
    const r = await sessionRate(target, BOB, 8, seconds * 1000);
    return { units: r.sessions, summary: `${r.perSecond} sessions/s, ${r.gatewayCpuMsPerSession} CPU ms per session` };
  };
  const { result, profile } = kind === 'cpu'
    ? await profileDuring(inspectorUrl, run)
    : await allocationsDuring(inspectorUrl, run, 4096, { includeMinorGarbage: kind === 'alloc' });
  await stop();
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(profile));
  log(`${who}: ${result.summary} (profiler attached); saved ${out}`);
  if (kind === 'cpu') {
    process.stdout.write(execFileSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'profile-top.ts'), out, '--top', String(top)]));
  } else {
    printAllocations(profile as { head: HeapNode }, result.units);
  }
} finally {
  await cleanup();
}
