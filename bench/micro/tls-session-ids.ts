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

const sniRun = values.sni === true;
type Mode = 'ids' | 'none' | 'peek' | 'sni';
/** `--modes A,B`: any two servers (e.g. `none,peek`: what reading the first bytes costs). */
const [modeA, modeB] = (values.modes?.split(',') ?? [sniRun ? 'sni' : 'ids', sniRun ? 'none' : bare]) as [Mode, Mode];
const servers = { ids: await startServer(modeA), none: await startServer(modeB) };
try {
  for (const s of Object.values(servers)) await handshakes(s.port, perRound * 2); // warm-up
  const us: Record<'ids' | 'none', number[]> = { ids: [], none: [] };
  for (let r = 0; r < rounds; r++) {
    const order: ('ids' | 'none')[] = r % 2 === 0 ? ['ids', 'none'] : ['none', 'ids'];
    for (const k of order) {
      const before = await servers[k].cpuMs();
      await handshakes(servers[k].port, perRound);
      us[k].push(((await servers[k].cpuMs()) - before) / perRound * 1000);
    }
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  console.log(`${maxVersion}, ${rounds} rounds of ${perRound} handshakes, server CPU µs per handshake (median):`);
  const diff = median(us.ids.map((x, i) => x - us.none[i]!)).toFixed(0);
  if (values.modes !== undefined) {
    console.log(`  ${modeA} ${median(us.ids).toFixed(0)}, ${modeB} ${median(us.none).toFixed(0)}, paired difference ${diff}`);
  } else {
    const [withWhat, without] = sniRun ? ['an SNICallback', ''] : ['session-ID listeners', bare === 'peek' ? ' (first bytes read and put back)' : ''];
    console.log(`  with ${withWhat} ${median(us.ids).toFixed(0)}, without${without} ${median(us.none).toFixed(0)}, paired difference ${diff}`);
  }
} finally {
  for (const s of Object.values(servers)) s.stop();
}
