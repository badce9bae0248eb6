import net from 'node:net';

/**
 * A port that was free a moment ago: bind port 0, read the port, close.
 * Another process may take it before the caller binds, so callers that start
 * external servers retry on "address in use".
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`freePort: unexpected address ${String(address)}`));
        return;
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}

/**
 * `n` ports free a moment ago and different from each other: all `n` are held open until each
 * has its port, then closed. Calling freePort() once per port can hand the same port out twice
 * (the first is closed before the second is asked for, and the kernel may give it again): a
 * gateway then refused its config, "admin.port ... is also used by listeners[1]".
 */
export function freePorts(n: 2, host?: string): Promise<[number, number]>;
export function freePorts(n: 3, host?: string): Promise<[number, number, number]>;
export function freePorts(n: number, host?: string): Promise<number[]>;
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const servers = Array.from({ length: n }, () => net.createServer());
  try {
    return await Promise.all(servers.map((server) => new Promise<number>((resolve, reject) => {
      server.unref();
      server.once('error', reject);
      server.listen({ host, port: 0, exclusive: true }, () => {
        const address = server.address();
        if (address === null || typeof address === 'string') reject(new Error(`freePorts: unexpected address ${String(address)}`));
        else resolve(address.port);
      });
    })));
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))));
  }
}

/** Resolves once host:port accepts a TCP connection, or rejects after timeoutMs. */
export async function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  while (Date.now() < deadline) {
    try {
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect({ host, port });
        socket.once('connect', () => {
          socket.destroy();
          resolve();
        });
        socket.once('error', (err) => {
          socket.destroy();
          reject(err);
        });
      });
      return;
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${host}:${port} to accept: ${String(lastError)}`);
}
