/**
 * `node --import tsx bench/runs-range.ts A.json B.json ...`: min–max over several saved
 * bench/results/latest.json files of the issue-10 figures (gateway ÷ Node TLS pipe), as a
 * Markdown table for the README.
 */
import fs from 'node:fs';
import type { BenchResults, TargetResult } from './lib/report.ts';
import { alternatingRate } from './lib/interleaved.ts';

const runs = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f, 'utf8')) as BenchResults);
type Get = (r: BenchResults) => number | null | undefined;
const t = (r: BenchResults, k: string): TargetResult | undefined => r.targets[k];
const noopAdded = (r: BenchResults, k: string) => {
  const g = t(r, k);
  const p = t(r, 'dovecotPlain');
  return g && p ? g.noop.p50Us - p.noop.p50Us : null;
};
const rows: Array<[string, Get, number]> = [];
for (const [k, name] of [['nodePipe', 'pipe'], ['gatewayWarn', 'gateway warn'], ['gatewayInfoAudit', 'gateway info+audit']] as const) {
  rows.push([`${name}: CPU s per GiB`, (r) => t(r, k)?.bulkBig.gatewayCpuSPerGiB, 2]);
  rows.push([`${name}: CPU ms per session`, (r) => t(r, k)?.sessions.gatewayCpuMsPerSession, 2]);
  rows.push([`${name}: sessions/s`, (r) => t(r, k)?.sessions.perSecond, 0]);
  rows.push([`${name}: NOOP p50 added over plain Dovecot, µs`, (r) => noopAdded(r, k), 0]);
  rows.push([`${name}: idle logged-in session, PSS KiB`, (r) => t(r, k)?.idle?.pssKibPerLoggedIn, 1]);
}
for (const k of ['gatewayWarn', 'gatewayInfoAudit'] as const) {
  const c = (name: string) => (r: BenchResults) => r.comparisons[`${k}.${name}`];
  rows.push([`${k}: CPU per GiB ÷ pipe`, c('cpuPerGiBVsNodePipe'), 2]);
  rows.push([`${k}: CPU per session ÷ pipe`, c('cpuPerSessionVsNodePipe'), 2]);
  rows.push([`${k}: sessions/s ÷ pipe`, c('sessionsPerSecVsNodePipe'), 2]);
  rows.push([`${k}: NOOP p50 − pipe's, µs`, c('noopP50AddedUsOverNodePipe'), 0]);
  rows.push([`${k}: idle PSS − pipe's, KiB`, c('idlePssKibOverNodePipe'), 1]);
}
// The alternating-rounds phase (lib/interleaved.ts): what the verdict rows read.
const il = (r: BenchResults) => r.interleaved ?? null;
rows.push(['alternating: pipe CPU ms per session', (r) => il(r)?.median.pipe, 2]);
rows.push(['alternating: warn CPU ms per session', (r) => il(r)?.median.warn, 2]);
rows.push(['alternating: info+audit CPU ms per session', (r) => il(r)?.median.info, 2]);
rows.push(['alternating: warn ÷ pipe, CPU per session', (r) => il(r)?.warnOverPipe, 2]);
rows.push(['alternating: info+audit ÷ pipe, CPU per session', (r) => il(r)?.infoOverPipe, 2]);
rows.push(['alternating: info+audit over warn, CPU per session, %', (r) => (il(r) ? (il(r)!.infoOverWarn - 1) * 100 : null), 1]);
rows.push(['alternating: info (audit off) over warn: the log lines, %', (r) => (il(r)?.logOnlyOverWarn === undefined ? null : (il(r)!.logOnlyOverWarn! - 1) * 100), 1]);
rows.push(['alternating: info+audit over info: the audit, %', (r) => (il(r)?.infoOverLogOnly === undefined ? null : (il(r)!.infoOverLogOnly! - 1) * 100), 1]);
rows.push(['alternating, paced: pipe CPU ms per session', (r) => il(r)?.pacedMedian?.pipe, 2]);
rows.push(['alternating, paced: warn ÷ pipe, CPU per session', (r) => il(r)?.warnPacedOverPipe, 2]);
rows.push(['alternating, paced: info+audit ÷ pipe, CPU per session', (r) => il(r)?.infoPacedOverPipe, 2]);
rows.push(['alternating: pipe CPU s per GiB', (r) => il(r)?.gibMedian.pipe, 2]);
rows.push(['alternating: warn ÷ pipe, CPU per GiB', (r) => il(r)?.warnGibOverPipe, 2]);
rows.push(['alternating: info+audit ÷ pipe, CPU per GiB', (r) => il(r)?.infoGibOverPipe, 2]);
rows.push(['alternating: warn ÷ pipe, sessions/s', (r) => (il(r) ? alternatingRate(il(r)!, 'warn')?.ratio : null), 2]);
rows.push(['alternating: info+audit ÷ pipe, sessions/s', (r) => (il(r) ? alternatingRate(il(r)!, 'info')?.ratio : null), 2]);
rows.push(['alternating: warn NOOP p50 − pipe\'s, µs', (r) => il(r)?.warnNoopOverPipeUs, 0]);
rows.push(['alternating: info+audit NOOP p50 − pipe\'s, µs', (r) => il(r)?.infoNoopOverPipeUs, 0]);
rows.push(['info+audit over warn, CPU per session, %', (r) => {
  const w = t(r, 'gatewayWarn')?.sessions.gatewayCpuMsPerSession;
  const i = t(r, 'gatewayInfoAudit')?.sessions.gatewayCpuMsPerSession;
  return w && i ? (i / w - 1) * 100 : null;
}, 0]);
process.stdout.write(`| figure (${runs.length} runs) | min–max |\n|---|---|\n`);
for (const [name, get, d] of rows) {
  const xs = runs.map(get).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (xs.length === 0) continue;
  process.stdout.write(`| ${name} | ${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)} |\n`);
}
const loads = runs.map((r) => `${r.loadAverage1m.start.toFixed(1)}/${r.loadAverage1m.end.toFixed(1)}`);
process.stdout.write(`\nload average (1 min) at start/end of each run: ${loads.join(', ')}\n`);
