/**
 * The HAProxy harness itself: a real HAProxy relays a client bound to 127.0.0.5 with the PROXY
 * header it was asked for, its POP3 health check tells a greeting server from a refusing one,
 * and stop() ends the process by PID and removes its folder.
 */
import fs from 'node:fs';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseProxyHeader, type ProxyInfo } from '../../src/protocol/proxy-header.ts';
import { startHaproxy, type HaproxyInstance } from './haproxy.ts';

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A server that reads a PROXY header, then greets with `greeting` and answers QUIT. */
async function headerServer(greeting: string): Promise<{ port: number; headers: ProxyInfo[] }> {
  const headers: ProxyInfo[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let greeted = false;
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!greeted) {
        const p = parseProxyHeader(buf);
        if (p.status === 'more') return;
        if (p.status === 'invalid') return void s.destroy();
        headers.push(p.info);
        buf = buf.subarray(p.length);
        greeted = true;
        s.write(`${greeting}\r\n`);
      }
      if (buf.includes('QUIT\r\n')) s.end('+OK bye\r\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => {
    server.close(() => r());
    for (const s of sockets) s.destroy();
  }));
  return { port: (server.address() as net.AddressInfo).port, headers };
}

async function start(opts: Parameters<typeof startHaproxy>[0]): Promise<HaproxyInstance> {
  const hp = await startHaproxy(opts);
  cleanups.push(() => hp.stop());
  return hp;
}

describe('the HAProxy harness', () => {
  it.each(['v1', 'v2'] as const)('relays a client from 127.0.0.5 with a PROXY %s header', async (version) => {
    const backend = await headerServer('+OK hello');
    const hp = await start({ backends: [{ host: '127.0.0.1', port: backend.port }], sendProxy: version });
    const client = net.connect({ host: '127.0.0.1', port: hp.port, localAddress: '127.0.0.5' });
    const greeting = await new Promise<string>((resolve, reject) => {
      client.once('data', (d: Buffer) => resolve(d.toString('latin1')));
      client.once('error', reject);
    });
    expect(greeting).toBe('+OK hello\r\n');
    expect(backend.headers).toHaveLength(1);
    expect(backend.headers[0]).toMatchObject({
      version: version === 'v1' ? 1 : 2, command: 'PROXY', family: 'TCP4',
      source: { address: '127.0.0.5', port: client.localPort },
      destination: { address: '127.0.0.1', port: hp.port },
    });
    client.destroy();
  });

  it('health-checks with the header and the POP3 greeting, marking a refusing server DOWN', async () => {
    const good = await headerServer('+OK ready');
    const bad = await headerServer('-ERR go away');
    const hp = await start({
      backends: [{ host: '127.0.0.1', port: good.port }, { host: '127.0.0.1', port: bad.port }],
      sendProxy: 'v2',
      healthCheck: { interMs: 100 },
    });
    await hp.waitForLog(/Server be\/s1 is DOWN/);
    while (good.headers.length < 3) await new Promise((r) => setTimeout(r, 50));
    expect(hp.readLog()).not.toMatch(/be\/s0 is DOWN/);
    // v2 checks say LOCAL: the proxy's own connection, no client behind it.
    expect(good.headers.every((h) => h.command === 'LOCAL')).toBe(true);
  });

  it('stops HAProxy by its PID and removes its folder', async () => {
    const backend = await headerServer('+OK');
    const hp = await startHaproxy({ backends: [{ host: '127.0.0.1', port: backend.port }], sendProxy: 'v2' });
    expect(fs.readFileSync(hp.configFile, 'utf8')).toContain('send-proxy-v2');
    expect(() => process.kill(hp.pid, 0)).not.toThrow();
    await hp.stop();
    expect(() => process.kill(hp.pid, 0)).toThrow();
    expect(fs.existsSync(hp.dir)).toBe(false);
  });
});
