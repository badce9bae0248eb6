// Child of bench/micro/tls-session-ids.ts: a bare tls.Server, with or without the session-ID
// cache listeners (MODE "ids" / "none"), or without them behind a plain listener that reads the
// client's first bytes and puts them back before the handshake (MODE "peek", as
// src/net/tls-engine.ts does), or with an SNICallback that finds no other context (MODE "sni"),
// reporting its own CPU when asked.
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

const [cert, key, mode] = process.argv.slice(2);
const sni = mode === 'sni' ? { SNICallback: (_name, cb) => cb(null, undefined) } : {};
const server = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), minVersion: 'TLSv1.2', ...sni }, (s) => {
  s.on('error', () => undefined);
  s.on('data', () => s.end('+OK bye\r\n'));
  s.write('+OK hi\r\n');
});
if (mode === 'ids') {
  const cache = new Map();
  server.on('newSession', (id, data, done) => {
    cache.set(id.toString('hex'), data);
    if (cache.size > 10000) cache.delete(cache.keys().next().value);
    done();
  });
  server.on('resumeSession', (id, done) => done(null, cache.get(id.toString('hex')) ?? null));
}
const front = mode !== 'peek' ? server : net.createServer((raw) => {
  raw.on('error', () => undefined);
  raw.once('data', (chunk) => {
    raw.pause();
    raw.unshift(chunk);
    server.emit('connection', raw);
  });
});
front.listen(0, '127.0.0.1', () => process.send({ port: front.address().port }));
process.on('message', (m) => {
  if (m !== 'cpu') return;
  const u = process.cpuUsage();
  process.send({ cpuMs: (u.user + u.system) / 1000 });
});
