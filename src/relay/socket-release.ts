/**
 * Letting go of a closed socket. A closed socket outlives the young-generation collections after
 * its close: Node's handle objects hold it through weak handles that V8's scavenger keeps, so only
 * a full collection frees it (with forced collections, no finished session was freed by a minor
 * one). Every listener still on it kept its owner that long too, promoted to the old generation
 * on the way. So a session drops its listeners once a socket has closed, and what it built for
 * the session can die young.
 */
import type { Socket } from 'node:net';

type Listener = (...args: never[]) => void;

/** (event, function) pairs an owner puts on a socket: one list to attach and to take off. */
export type SocketListeners = ReadonlyArray<readonly [string, Listener]>;

/** An 'error' with no listener throws: a released socket's late errors are dropped. */
const ignoreError = (): void => undefined;

export function attachListeners(sock: Socket, listeners: SocketListeners): void {
  for (const [event, fn] of listeners) sock.on(event, fn as (...args: unknown[]) => void);
}

export function detachListeners(sock: Socket, listeners: SocketListeners): void {
  for (const [event, fn] of listeners) sock.off(event, fn as (...args: unknown[]) => void);
}

/** Removes `listeners` from `sock`, leaving only a no-op 'error' listener of ours. */
export function releaseSocket(sock: Socket, listeners: SocketListeners): void {
  detachListeners(sock, listeners);
  if (!sock.listeners('error').includes(ignoreError)) sock.on('error', ignoreError);
}
