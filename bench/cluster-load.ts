/**
 * A bounded load of full POP3S sessions (TLS handshake, USER, PASS, STAT, QUIT, close), run
 * as its own process by cluster-scaling.ts so the clients' TLS work is not counted against
 * the gateway's event loop. Prints one JSON line: sessions, errors, elapsed, per second.
 *
 *   node --import tsx bench/cluster-load.ts PORT USER PASSWORD CONCURRENCY SECONDS
 */
import tls from 'node:tls';

const [port, user, password, concurrency, seconds] = process.argv.slice(2);
if (seconds === undefined) {
  process.stderr.write('usage: cluster-load.ts PORT USER PASSWORD CONCURRENCY SECONDS\n');
  process.exit(2);
}

function session(): Promise<void> {
  return new Promise((resolve, reject) => {
    const script = [`USER ${user}`, `PASS ${password}`, 'STAT', 'QUIT'];
    let step = -1; // -1: waiting for the greeting
    let buf = '';
    const s = tls.connect({ host: '127.0.0.1', port: Number(port), rejectUnauthorized: false });
    const timer = setTimeout(() => s.destroy(new Error('session timed out')), 15_000);
    s.setEncoding('latin1');
    s.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith('+OK')) return s.destroy(new Error(`step ${step}: ${line.trim()}`));
        step += 1;
        if (step < script.length) s.write(`${script[step]}\r\n`);
        else s.end();
      }
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      if (step >= script.length) resolve();
      else reject(new Error(`closed at step ${step}`));
    });
  });
}

const started = performance.now();
const deadline = started + Number(seconds) * 1000;
let sessions = 0;
let errors = 0;
const samples: string[] = [];
await Promise.all(Array.from({ length: Number(concurrency) }, async () => {
  while (performance.now() < deadline) {
    try {
      await session();
      sessions += 1;
    } catch (err) {
      errors += 1;
      if (samples.length < 3) samples.push((err as Error).message);
    }
  }
}));
const elapsedMs = performance.now() - started;
process.stdout.write(`${JSON.stringify({ sessions, errors, samples, elapsedMs: Math.round(elapsedMs), perSecond: sessions / (elapsedMs / 1000) })}\n`);
