/**
 * `node --import tsx bench/micro/dovecot-login-pipelining.ts [--logins N]`: how long a real
 * Dovecot (the test harness's, on loopback) takes to log in a client that sends USER and PASS
 * one at a time, both in one write, or in two writes back to back; alone and 8 at once. No
 * gateway in between: this is why the gateway sends PASS only after USER's reply
 * (src/relay/backend-login.ts). Measured here with Dovecot 2.3.19: 5 ms one at a time, 41–44 ms
 * in one write, and two writes as bad under load (they arrive as one segment).
 */
import net from 'node:net';
import { parseArgs } from 'node:util';
import { openRunScope } from '../lib/run-scope.ts';
import { startBulkBackend } from '../lib/bulk-backend.ts';

type Mode = 'one at a time' | 'one write' | 'two writes';

const { values } = parseArgs({ options: { logins: { type: 'string' } } });
const logins = Number(values.logins ?? 25);
const log = (l: string) => process.stderr.write(`[dovecot-login ${new Date().toISOString().slice(11, 19)}] ${l}\n`);

/** Milliseconds from sending USER to the reply to PASS. */
function login(port: number, mode: Mode): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
    let buf = '';
    let replies = 0;
    let t0 = 0;
    s.on('error', reject);
    s.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1');
      const lines = buf.split('\r\n');
      buf = lines.pop()!;
      for (const line of lines) {
        replies++;
        if (!line.startsWith('+OK')) {
          s.destroy();
          reject(new Error(`Dovecot said ${JSON.stringify(line)}`));
          return;
        }
        if (replies === 1) {
          t0 = performance.now();
          if (mode === 'one write') s.write('USER bob\r\nPASS bob-secret\r\n');
          else if (mode === 'two writes') {
            s.write('USER bob\r\n');
            s.write('PASS bob-secret\r\n');
          } else s.write('USER bob\r\n');
        } else if (replies === 2 && mode === 'one at a time') s.write('PASS bob-secret\r\n');
        else if (replies === 3) {
          const ms = performance.now() - t0;
          s.end('QUIT\r\n');
          resolve(ms);
        }
      }
    });
  });
}

const { live, cleanup } = openRunScope('dovecot-login', log);
try {
  const backend = await startBulkBackend(1, (d) => (live.dovecot = d));
  const port = backend.dovecot.port;
  process.stdout.write('| clients at once | mode | login p50 ms | p90 ms |\n|---|---|---|---|\n');
  for (const clients of [1, 8]) {
    for (const mode of ['one at a time', 'one write', 'two writes'] as const) {
      const ms: number[] = [];
      await Promise.all(Array.from({ length: clients }, async () => {
        for (let i = 0; i < logins; i++) {
          ms.push(await login(port, mode));
          await new Promise((r) => setTimeout(r, 30));
        }
      }));
      ms.sort((a, b) => a - b);
      const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(ms.length * q))]!.toFixed(1);
      process.stdout.write(`| ${clients} | ${mode} | ${at(0.5)} | ${at(0.9)} |\n`);
    }
  }
} finally {
  await cleanup();
}
