/**
 * The second reference column: the least a POP3-aware Node TLS proxy can do for the bench's
 * sessions. Like the gateway (backend.connect: on-login) it greets by itself, answers USER
 * itself, and on PASS connects the backend, reads its greeting and logs in with USER then PASS,
 * one at a time; after that it relays single-line commands (STAT, NOOP, QUIT) and their
 * replies line by line. Nothing else: no policy, limits, timeouts, logs, metrics or audit, no
 * multi-line replies, no error replies worth the name. Not a product, a floor: what reading the
 * POP3 conversation itself costs, beside the pipe's bytes-only floor.
 *
 *   node --import tsx bench/lib/pop3-floor-proxy.ts CERT KEY BACKEND_PORT   (prints {"port":N})
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { spawnServer, stopChild } from '../../test/harness/child-processes.ts';
import type { PipeProxy } from './pipe-proxy.ts';

/** Starts the floor proxy as a child process in front of 127.0.0.1:backendPort. */
export async function startPop3FloorProxy(certFile: string, keyFile: string, backendPort: number): Promise<PipeProxy> {
  const self = fileURLToPath(import.meta.url);
  const child: ChildProcess = spawnServer(process.execPath, ['--import', 'tsx', self, certFile, keyFile, String(backendPort)], {
    cwd: path.resolve(path.dirname(self), '../..'),
  });
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`POP3 floor proxy did not start: ${err}`)), 20_000);
    child.stdout?.once('data', (c: Buffer) => {
      clearTimeout(timer);
      resolve((JSON.parse(c.toString()) as { port: number }).port);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`POP3 floor proxy exited with ${code}: ${err}`));
    });
  });
  return { pid: child.pid!, port, stop: () => stopChild(child, 'SIGTERM', 5000) };
}

/** Calls `onLine` with each LF-terminated line (CRLF kept) of what `sock` sends. */
function readLines(sock: net.Socket, onLine: (line: Buffer) => void): void {
  let held: Buffer | null = null;
  sock.on('data', (chunk: Buffer) => {
    const data = held === null ? chunk : Buffer.concat([held, chunk]);
    let start = 0;
    for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, start)) {
      onLine(data.subarray(start, nl + 1));
      start = nl + 1;
    }
    held = start === data.length ? null : data.subarray(start);
  });
}

function serve(certFile: string, keyFile: string, backendPort: number): void {
  const server = tls.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), noDelay: true }, (client) => {
    let user = '';
    let backend: net.Socket | null = null;
    let loggingIn = false;
    /** Gets the backend's next line. */
    let onReply: ((line: Buffer) => void) | null = null;
    const ask = (line: Buffer | string, then: (reply: Buffer) => void): void => {
      onReply = then;
      backend!.write(line);
    };
    client.on('error', () => backend?.destroy());
    client.on('close', () => backend?.destroy());
    client.write('+OK POP3 floor proxy ready\r\n');
    readLines(client, (line) => {
      const sp = line.indexOf(0x20);
      const verb = line.toString('latin1', 0, sp < 0 ? line.length - 2 : sp).toUpperCase();
      if (backend !== null && !loggingIn) {
        ask(line, (reply) => client.write(reply));
        return;
      }
      if (verb === 'USER' && sp > 0) {
        user = line.toString('latin1', sp + 1, line.length - 2);
        client.write('+OK\r\n');
      } else if (verb === 'PASS' && sp > 0 && backend === null) {
        loggingIn = true;
        const pass = line.subarray(sp + 1);
        backend = net.connect({ host: '127.0.0.1', port: backendPort, noDelay: true });
        backend.on('error', () => client.destroy());
        backend.on('close', () => client.end());
        readLines(backend, (reply) => {
          const then = onReply;
          onReply = null;
          then?.(reply);
        });
        onReply = () => ask(`USER ${user}\r\n`, () => ask(Buffer.concat([Buffer.from('PASS '), pass]), (reply) => {
          loggingIn = false;
          client.write(reply);
        }));
      } else if (verb === 'QUIT') {
        client.end('+OK bye\r\n');
      } else {
        client.write('-ERR not here\r\n');
      }
    });
  });
  server.on('tlsClientError', () => undefined);
  server.listen(0, '127.0.0.1', () => {
    const addr = server.address() as net.AddressInfo;
    process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`);
  });
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [certFile, keyFile, port] = process.argv.slice(2);
  if (certFile === undefined || keyFile === undefined || port === undefined) {
    process.stderr.write('usage: pop3-floor-proxy.ts CERT KEY BACKEND_PORT\n');
    process.exit(2);
  }
  serve(certFile, keyFile, Number(port));
}
