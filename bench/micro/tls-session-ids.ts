/**
 * `node --import tsx bench/micro/tls-session-ids.ts [--rounds N] [--handshakes N] [--max-version TLSv1.2|TLSv1.3] [--peek] [--sni] [--modes A,B]`:
 * server CPU per full handshake of a bare `tls.Server` with the session-ID cache listeners
 * (`newSession` / `resumeSession`) against one without, both running at once, measured in
 * alternating rounds (medians of per-round figures). With the listeners, Node parses each
 * ClientHello before OpenSSL and calls into JavaScript for it and for each session OpenSSL
 * creates (two tickets per TLS 1.3 handshake): why src/net/tls-engine.ts serves TLS 1.3 hellos
 * from a server without them.
 *
 * `--modes A,B`: any two of ids, none, peek, sni (e.g. `peek,none`: what reading the first bytes
 * costs). `--sni`: instead, a server with an SNICallback (that finds no other certificate) against one
 * without: with a callback Node stops each handshake that names a server for a call into
 * JavaScript, which is why the engine sets one only when `tls.sni` has entries.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { makeCert } from '../../test/harness/certs.ts';

const { values } = parseArgs({ options: {
  rounds: { type: 'string' }, handshakes: { type: 'string' }, 'max-version': { type: 'string' }, peek: { type: 'boolean' }, sni: { type: 'boolean' }, modes: { type: 'string' },
} });
/** --peek: the server without listeners reads and puts back the first bytes first (the engine's routing cost). */
const bare = values.peek === true ? 'peek' : 'none';
const rounds = Number(values.rounds ?? 12);
const perRound = Number(values.handshakes ?? 800);
const maxVersion = (values['max-version'] ?? 'TLSv1.3') as tls.SecureVersion;
const cert = await makeCert({ commonName: 'localhost' });

interface Server { port: number; cpuMs(): Promise<number>; stop(): void }

function startServer(mode: 'ids' | 'none' | 'peek' | 'sni'): Promise<Server> {
  const child = fork(fileURLToPath(new URL('./tls-server.mjs', import.meta.url)), [cert.certFile, cert.keyFile, mode]);
  return new Promise((resolve) => child.once('message', (m: { port: number }) => resolve({
    port: m.port,
    stop: () => child.kill(),
    cpuMs: () => new Promise((r) => {
      child.once('message', (x: { cpuMs: number }) => r(x.cpuMs));
      child.send('cpu');
    }),
  })));
}

function session(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', ca: cert.caPem, servername: 'localhost', maxVersion });
    s.once('data', () => s.write('QUIT\r\n'));
    s.on('close', () => resolve());
    s.on('error', reject);
  });
}

async function handshakes(port: number, n: number): Promise<void> {
  let left = n;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (left-- > 0) await session(port);
  }));
}

type Mode = 'ids' | 'none' | 'peek' | 'sni';
const LABEL: Record<Mode, string> = {
  ids: 'with session-ID listeners', none: 'plain tls.Server', peek: 'first bytes read and put back', sni: 'with an SNICallback',
};
/** `--modes A,B`: any two servers (e.g. `peek,none`: what reading the first bytes costs); `--sni` is `sni,none`. */
const [modeA, modeB] = (values.modes?.split(',') ?? (values.sni === true ? ['sni', 'none'] : ['ids', bare])) as [Mode, Mode];
const servers = { a: await startServer(modeA), b: await startServer(modeB) };
try {
  for (const s of Object.values(servers)) await handshakes(s.port, perRound * 2); // warm-up
  const us: Record<'a' | 'b', number[]> = { a: [], b: [] };
  for (let r = 0; r < rounds; r++) {
    const order: ('a' | 'b')[] = r % 2 === 0 ? ['a', 'b'] : ['b', 'a'];
    for (const k of order) {
      const before = await servers[k].cpuMs();
      await handshakes(servers[k].port, perRound);
      us[k].push(((await servers[k].cpuMs()) - before) / perRound * 1000);
    }
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  console.log(`${maxVersion}, ${rounds} rounds of ${perRound} handshakes, server CPU µs per handshake (median):`);
  console.log(`  ${LABEL[modeA]} ${median(us.a).toFixed(0)}, ${LABEL[modeB]} ${median(us.b).toFixed(0)}, paired difference ${median(us.a.map((x, i) => x - us.b[i]!)).toFixed(0)}`);
} finally {
  for (const s of Object.values(servers)) s.stop();
}
