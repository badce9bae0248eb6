/**
 * `node --import tsx bench/profile-run.ts [--seconds N] [--mib N] [--level info|warn] [--no-audit] [--out DIR]`:
 * CPU profiles of the compiled gateway for one kind of work each, so the two costs issue 10 names
 * do not blur: one gateway process runs only full sessions (N s, 8 concurrent), a second only
 * bulk RETR (a message of --mib MiB, 5 times). The Node TLS pipe gets the same two runs as the
 * floor (--no-pipe skips it; --only sessions|bulk runs one kind). Prints the top entries of each profile (bench/profile-top.ts reads them again).
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { openRunScope } from './lib/run-scope.ts';
import { startBulkBackend, startProxy } from './lib/bulk-backend.ts';
import { bulkRetr, sessionRate } from './lib/measure.ts';

const { values } = parseArgs({ options: {
  seconds: { type: 'string' }, mib: { type: 'string' }, level: { type: 'string' }, 'no-audit': { type: 'boolean' }, out: { type: 'string' }, only: { type: 'string' }, 'no-pipe': { type: 'boolean' },
} });
const seconds = Number(values.seconds ?? 6);
const mib = Number(values.mib ?? 50);
const level = values.level === 'warn' ? 'warn' : 'info';
const audit = values['no-audit'] !== true;
const out = path.resolve(values.out ?? '.bench/profiles');
const log = (l: string) => process.stderr.write(`[profile ${new Date().toISOString().slice(11, 19)}] ${l}\n`);
const BOB = { user: 'bob', password: 'bob-secret' };
const ALICE = { user: 'alice', password: 'alice-secret' };

const { dir, live, cleanup } = openRunScope('profile', log);
try {
  const backend = await startBulkBackend(mib, (d) => (live.dovecot = d));
  const results: string[] = [];
  for (const work of (['sessions', 'bulk'] as const).filter((w) => values.only === undefined || values.only === w)) {
    for (const who of (['pipe', 'gateway'] as const).filter((w) => w === 'gateway' || values['no-pipe'] !== true)) {
      const profDir = path.join(out, `${who}-${work}`);
      fs.rmSync(profDir, { recursive: true, force: true });
      const nodeArgs = ['--cpu-prof', `--cpu-prof-dir=${profDir}`];
      const { target: t, stop } = await startProxy(who, backend, { dir, nodeArgs, level, audit, live });
      log(`${who}: ${work}`);
      if (work === 'sessions') {
        const r = await sessionRate(t, BOB, 8, seconds * 1000);
        results.push(`${who} sessions: ${r.perSecond}/s, ${r.gatewayCpuMsPerSession} CPU ms per session`);
      } else {
        const r = await bulkRetr(t, ALICE, mib, 5);
        results.push(`${who} bulk: ${r.mibPerSec} MiB/s, ${r.gatewayCpuSPerGiB} CPU s per GiB`);
      }
      await stop();
      const file = fs.readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      if (file !== undefined) {
        process.stdout.write(execFileSync(process.execPath, ['--import', 'tsx', 'bench/profile-top.ts', path.join(profDir, file), '--top', '25']));
      }
    }
  }
  process.stdout.write(`${results.join('\n')}\n`);
} finally {
  await cleanup();
}
