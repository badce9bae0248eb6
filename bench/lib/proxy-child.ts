/**
 * The reference proxies of the bench (pipe-proxy.ts, pop3-floor-proxy.ts) run as child
 * processes: each file is also its own entry point. This is the shared part: starting one and
 * reading the port it prints, and the entry point's argument handling.
 */
import type { ChildProcess } from 'node:child_process';
import type { AddressInfo, Server } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnServer, stopChild } from '../../test/harness/child-processes.ts';

export interface ProxyChild {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/** Runs `moduleUrl` (a proxy file) as a child in front of 127.0.0.1:backendPort; resolves once it listens. */
export async function startProxyChild(moduleUrl: string, name: string, certFile: string, keyFile: string, backendPort: number,
  nodeArgs: string[] = []): Promise<ProxyChild> {
  const file = fileURLToPath(moduleUrl);
  const child: ChildProcess = spawnServer(process.execPath, [...nodeArgs, '--import', 'tsx', file, certFile, keyFile, String(backendPort)], {
    cwd: path.resolve(path.dirname(file), '../..'),
  });
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${err}`)), 20_000);
    child.stdout?.once('data', (c: Buffer) => {
      clearTimeout(timer);
      resolve((JSON.parse(c.toString()) as { port: number }).port);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}: ${err}`));
    });
  });
  return { pid: child.pid!, port, stop: () => stopChild(child, 'SIGTERM', 5000) };
}

/** When `moduleUrl` is the process's entry point: `serve(CERT, KEY, BACKEND_PORT)` from the command line. */
export function proxyMain(moduleUrl: string, serve: (certFile: string, keyFile: string, backendPort: number) => void): void {
  const file = fileURLToPath(moduleUrl);
  if (process.argv[1] === undefined || path.resolve(process.argv[1]) !== file) return;
  const [certFile, keyFile, port] = process.argv.slice(2);
  if (certFile === undefined || keyFile === undefined || port === undefined) {
    process.stderr.write(`usage: ${path.basename(file)} CERT KEY BACKEND_PORT\n`);
    process.exit(2);
  }
  serve(certFile, keyFile, Number(port));
}

/** Prints {"port":N} once `server` listens on loopback, and closes it on SIGTERM. */
export function announce(server: Server): void {
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address() as AddressInfo;
    process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`);
  });
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
}
