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
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { announce, proxyMain, startProxyChild, type ProxyChild } from './proxy-child.ts';

/** Starts the floor proxy as a child process in front of 127.0.0.1:backendPort. */
export function startPop3FloorProxy(certFile: string, keyFile: string, backendPort: number): Promise<ProxyChild> {
  return startProxyChild(import.meta.url, 'POP3 floor proxy', certFile, keyFile, backendPort);
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
  announce(server);
}

proxyMain(import.meta.url, serve);
