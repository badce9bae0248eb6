/**
 * `node --import tsx bench/rss-at-rest.ts [--rounds N]`: resident memory of an idle gateway,
 * compiled (`node dist/src/cli.js`) against the source through tsx (`node --import tsx
 * src/cli.ts`), same config (info, audit on, two listeners), read from /proc/PID/status
 * (VmRSS) and /proc/PID/smaps_rollup (Pss) 2 s after every listener logged "listening".
 * Rounds alternate the two so machine load hits both alike; prints min–max of each.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { makeCert } from '../test/harness/certs.ts';
import { makeTempDir } from '../test/harness/child-processes.ts';
import { freePort } from '../test/harness/ports.ts';
import { startGatewayProcess } from './lib/gateway-process.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string' } } });
const rounds = Math.max(1, Number(values.rounds ?? 3));

function kib(file: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(file, 'utf8'));
  return m === null ? NaN : Number(m[1]);
}

const cert = await makeCert({ commonName: 'localhost' });
const backendPort = await freePort(); // nothing listens: the gateway only warns that the probe failed
const dir = makeTempDir('rss');
const seen: Record<string, { rss: number[]; pss: number[] }> = { compiled: { rss: [], pss: [] }, tsx: { rss: [], pss: [] } };
for (let i = 0; i < rounds; i++) {
  for (const kind of ['compiled', 'tsx'] as const) {
    const gw = await startGatewayProcess({
      dir: fs.mkdtempSync(`${dir}/${kind}-`), backendPort, certFile: cert.certFile, keyFile: cert.keyFile,
      level: 'info', audit: true, source: kind === 'tsx',
    });
    await new Promise((r) => setTimeout(r, 2000));
    seen[kind]!.rss.push(kib(`/proc/${gw.pid}/status`, 'VmRSS'));
    seen[kind]!.pss.push(kib(`/proc/${gw.pid}/smaps_rollup`, 'Pss'));
    await gw.stop();
  }
}
const range = (xs: number[]): string => `${(Math.min(...xs) / 1024).toFixed(1)}–${(Math.max(...xs) / 1024).toFixed(1)} MiB`;
for (const [kind, v] of Object.entries(seen)) process.stdout.write(`${kind.padEnd(9)} RSS ${range(v.rss)}  PSS ${range(v.pss)}\n`);
