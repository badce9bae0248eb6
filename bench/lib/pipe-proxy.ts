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
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { announce, proxyMain, startProxyChild, type ProxyChild } from './proxy-child.ts';

export type PipeProxy = ProxyChild;

/** Starts the pipe proxy as a child process in front of 127.0.0.1:backendPort. */
export function startPipeProxy(certFile: string, keyFile: string, backendPort: number, nodeArgs: string[] = []): Promise<PipeProxy> {
  return startProxyChild(import.meta.url, 'pipe proxy', certFile, keyFile, backendPort, nodeArgs);
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
  announce(server);
}

proxyMain(import.meta.url, serve);
