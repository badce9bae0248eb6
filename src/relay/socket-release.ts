/**
 * Letting go of a closed socket. Node keeps a closed socket's native handle objects until a full
 * collection (the scavenger treats their weak handles as roots), and the socket with them; every
 * listener still on it keeps its owner alive that long too. So a session drops its listeners
 * once a socket has closed, and what it built for the session can die young.
 */
import type { Socket } from 'node:net';

type Listener = (...args: never[]) => void;

/** An 'error' with no listener throws: a released socket's late errors are dropped. */
const ignoreError = (): void => undefined;

/** Removes `listeners` (event, function) from `sock`, leaving only a no-op 'error' listener of ours. */
export function releaseSocket(sock: Socket, listeners: ReadonlyArray<readonly [string, Listener]>): void {
  for (const [event, fn] of listeners) sock.off(event, fn as (...args: unknown[]) => void);
  if (!sock.listeners('error').includes(ignoreError)) sock.on('error', ignoreError);
}
