/**
 * The reference column: the least a Node TLS-terminating proxy can do. One
 * node:tls server; per connection one node:net connection to the backend and
 * two pipe() calls, nothing parsed. What it costs on this machine is the floor
 * for the gateway's CPU per GiB and per session.
 *
 * Both sockets have TCP_NODELAY, as in the gateway, HAProxy and nginx. Without it (until the
 * seventh pass of issue 10) a small write waited behind the client's delayed ACK: 135 full
 * sessions/s with 8 clients against 150-230, a session's p50 57 ms against 34-52, and
 * 1.95 ms of CPU per session against 1.44-2.19 (the idle waits cost wake-ups). The floor read
 * too high, and the gateway's ratios to it too low.
 *
 *   node --import tsx bench/lib/pipe-proxy.ts CERT KEY BACKEND_PORT   (prints {"port":N})
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { spawnServer, stopChild } from '../../test/harness/child-processes.ts';

export interface PipeProxy {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/** Starts the pipe proxy as a child process in front of 127.0.0.1:backendPort. */
export async function startPipeProxy(certFile: string, keyFile: string, backendPort: number, nodeArgs: string[] = []): Promise<PipeProxy> {
  const self = fileURLToPath(import.meta.url);
  const child: ChildProcess = spawnServer(process.execPath, [...nodeArgs, '--import', 'tsx', self, certFile, keyFile, String(backendPort)], {
    cwd: path.resolve(path.dirname(self), '../..'),
  });
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pipe proxy did not start: ${err}`)), 20_000);
    child.stdout?.once('data', (c: Buffer) => {
      clearTimeout(timer);
      resolve((JSON.parse(c.toString()) as { port: number }).port);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`pipe proxy exited with ${code}: ${err}`));
    });
  });
  return { pid: child.pid!, port, stop: () => stopChild(child, 'SIGTERM', 5000) };
}

function serve(certFile: string, keyFile: string, backendPort: number): void {
  const server = tls.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), noDelay: true }, (client) => {
    const backend = net.connect({ host: '127.0.0.1', port: backendPort, noDelay: true });
    client.pipe(backend);
    backend.pipe(client);
    client.on('error', () => backend.destroy());
    backend.on('error', () => client.destroy());
  });
  server.on('tlsClientError', () => undefined); // a client that gives up mid-handshake is no news here
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address() as net.AddressInfo;
    process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`);
  });
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [certFile, keyFile, port] = process.argv.slice(2);
  if (certFile === undefined || keyFile === undefined || port === undefined) {
    process.stderr.write('usage: pipe-proxy.ts CERT KEY BACKEND_PORT\n');
    process.exit(2);
  }
  serve(certFile, keyFile, Number(port));
}
