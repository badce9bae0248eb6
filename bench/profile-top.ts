/**
 * `node --import tsx bench/profile-top.ts FILE.cpuprofile [--top N]`: the heaviest functions of a
 * V8 CPU profile (from `npm run bench -- --profile DIR`) by self time, and by where the time is
 * spent: our source (src/), each node_modules package, Node internals, native/GC. Percentages are
 * of the non-idle samples.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[] }

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' }, callers: { type: 'string' }, inclusive: { type: 'string' } } });
const top = Number(values.top ?? 25);
for (const file of positionals) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const where = (url: string, name: string): string => {
    if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') return name;
    if (url === '') return '(native)';
    const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (nm) return nm[1]!;
    if (url.startsWith('node:')) return 'node internals';
    const src = /\/(src|dist\/src)\/(.+)$/.exec(url);
    return src ? `src/${src[2]!.replace(/\.js$/, '.ts')}` : url;
  };
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)') continue;
    total += us;
    const w = where(url, functionName);
    const key = `${functionName || '(anonymous)'}  ${w}${url === '' ? '' : `:${lineNumber + 1}`}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    const a = w.startsWith('src/') ? 'src/' + w.slice(4).split('/')[0] : w;
    area.set(a, (area.get(a) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
  process.stdout.write(`${file}: ${(total / 1000).toFixed(0)} ms busy\n-- by area (self time)\n`);
  for (const [k, us] of [...area].sort((a, b) => b[1] - a[1]).slice(0, 15)) process.stdout.write(`${pct(us)}  ${k}\n`);
  process.stdout.write('-- by function (self time)\n');
  for (const [k, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${pct(us)}  ${k}\n`);
}

/** `--callers NAME`: for the functions named NAME, their self time split by the chain of callers (3 deep). */
const callers = process.argv.indexOf('--callers');
if (callers > 0) {
  const name = process.argv[callers + 1]!;
  for (const file of positionals.filter((f) => f.endsWith('.cpuprofile'))) {
    const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const selfUs = new Map<number, number>();
    p.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
    const chains = new Map<string, number>();
    for (const [id, us] of selfUs) {
      if (byId.get(id)!.callFrame.functionName !== name) continue;
      const names: string[] = [];
      for (let cur = parent.get(id); cur !== undefined && names.length < 6; cur = parent.get(cur)) {
        const f = byId.get(cur)!.callFrame;
        names.push(`${f.functionName || '(anon)'}@${f.url.split('/').slice(-1)[0]}:${f.lineNumber + 1}`);
      }
      const k = names.join(' < ');
      chains.set(k, (chains.get(k) ?? 0) + us);
    }
    for (const [k, us] of [...chains].sort((a, b) => b[1] - a[1]).slice(0, 12)) process.stdout.write(`${(us / 1000).toFixed(1).padStart(7)} ms  ${k}\n`);
  }
}

/** `--inclusive A,B,...`: time of the samples whose stack contains each named function (src/ and packages). */
const incl = process.argv.indexOf('--inclusive');
if (incl > 0) {
  const names = process.argv[incl + 1]!.split(',');
  for (const file of positionals.filter((f) => f.endsWith('.cpuprofile'))) {
    const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
    const parent = new Map<number, number>();
    for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const sums = new Map<string, number>(names.map((n) => [n, 0]));
    let busy = 0;
    p.samples.forEach((id, i) => {
      const us = p.timeDeltas[i] ?? 0;
      if (byId.get(id)!.callFrame.functionName === '(idle)') return;
      busy += us;
      const seen = new Set<string>();
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const f = byId.get(cur)!.callFrame.functionName;
        if (sums.has(f) && !seen.has(f)) {
          seen.add(f);
          sums.set(f, sums.get(f)! + us);
        }
      }
    });
    for (const [n, us] of sums) process.stdout.write(`${((100 * us) / busy).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(5)} ms  ${n} (inclusive)\n`);
  }
}
