/**
 * A session's connection to its backend: owns the socket and the reply stream,
 * sends queued commands as the backend allows (all at once when it pipelines,
 * one at a time when it does not), times out a reply that does not come, and
 * reports everything else to the session.
 *
 * The reply timer is an inactivity timeout on the socket (util/idle-watch.ts), armed once: every
 * write and read counts as activity, and when it runs out it counts only while a command is in
 * flight. (Arming it per command and clearing it per reply made two timers per command; the
 * socket's own setTimeout moved a timer in Node's list on every read and write.)
 */
import type { BackendLease } from '../backend/directory.ts';
import type { PendingQueue } from '../session/pending.ts';
import { IdleWatch } from '../util/idle-watch.ts';
import { attachListeners, releaseSocket, type SocketListeners } from './socket-release.ts';
import { BackendStream, type BackendStreamHooks, type BackendStreamLimits } from './backend-stream.ts';

export interface BackendLinkEvents extends BackendStreamHooks {
  /** The backend closed the connection. */
  closed(): void;
  /** No reply within the reply timeout while a command was in flight. */
  timedOut(): void;
  /** The backend took all we had queued for it: the session may read the client again. */
  writable(): void;
  /** A bug while handling the backend's bytes: the session ends, the process does not. */
  failed(err: unknown): void;
  debug(obj: object, msg: string): void;
}

export class BackendLink {
  private readonly stream: BackendStream;
  /** The backend's socket buffer is full: stop reading client commands until it drains. */
  writeBlocked = false;
  /** The reply timer ran out while the client held the backend back: start it again on resume. */
  private timerLapsed = false;
  private readonly replyTimer: IdleWatch;

  constructor(
    readonly lease: BackendLease,
    private readonly queue: PendingQueue,
    limits: BackendStreamLimits,
    private readonly pipelining: boolean,
    replyTimeout: number,
    private readonly events: BackendLinkEvents,
  ) {
    const sock = lease.conn.socket;
    // TCP_NODELAY is the connector's, set on the TCP socket once it connects (a TLSSocket would
    // pass a second call on to the same TCP handle).
    this.replyTimer = new IdleWatch(replyTimeout, this.onTimeout);
    // The session's events include the stream's four hooks: handed over as they are.
    this.stream = new BackendStream(queue, limits, events);
    attachListeners(sock, this.listeners);
  }

  private readonly onError = (err: Error): void => this.events.debug({ event: 'backend-error', err: err.message }, 'backend socket error');

  /** Bytes the connector read past the last reply it consumed: nobody asked for them. */
  get hasLeftover(): boolean {
    return this.lease.conn.leftover.length > 0;
  }

  /** True while a relayed multi-line body is half written to the client. */
  get midReply(): boolean {
    return this.stream.midReply;
  }

  /** True while the client is too slow to take what the backend sends. */
  get clientBlocked(): boolean {
    return this.stream.blocked;
  }

  private readonly onData = (chunk: Buffer): void => {
    // A throw here would escape the event loop and take every session down with it.
    try {
      this.replyTimer.touch();
      this.stream.push(chunk);
      if (this.stream.blocked) this.lease.conn.socket.pause();
    } catch (err) {
      this.events.failed(err);
    }
  };

  private readonly onDrain = (): void => {
    this.replyTimer.touch();
    if (!this.writeBlocked) return;
    this.writeBlocked = false;
    this.events.writable();
  };

  private readonly onClose = (): void => {
    this.replyTimer.stop();
    releaseSocket(this.lease.conn.socket, this.listeners);
    this.events.closed();
  };

  private readonly onTimeout = (): void => {
    if (this.stream.blocked) {
      this.timerLapsed = true; // the client is slow, not the backend
      return;
    }
    if (this.queue.inFlight) this.events.timedOut();
  };

  /**
   * Every listener the link puts on its socket, attached by the constructor and taken off once the
   * socket closes or the link lets go of it (socket-release.ts). Declared after the handlers: a
   * field initializer sees only the fields above it.
   */
  private readonly listeners: SocketListeners = [
    ['data', this.onData], ['drain', this.onDrain], ['close', this.onClose], ['error', this.onError],
  ];

  /** The client drained: read from the backend again, with a fresh reply timer. */
  resumeAfterClientDrain(): void {
    if (!this.stream.blocked) return;
    this.stream.blocked = false;
    const sock = this.lease.conn.socket;
    sock.resume();
    // The reply timer ran out (and was ignored) while we held the backend back: a fresh one.
    // Otherwise it is still armed and the next read counts.
    if (this.timerLapsed) {
      this.timerLapsed = false;
      this.replyTimer.touch();
    }
  }

  /** Sends every queued command the backend may take now. */
  pump(): void {
    const sock = this.lease.conn.socket;
    for (let e = this.queue.nextUnsent(); e !== undefined; e = this.queue.nextUnsent()) {
      if (!this.pipelining && this.queue.inFlight) break;
      e.sent = true;
      this.replyTimer.touch();
      if (!sock.write(e.wire!)) this.writeBlocked = true;
    }
  }

  /** A line outside the command queue (a relayed SASL response): written as it is, and activity for the reply timer. */
  writeLine(line: string): void {
    this.replyTimer.touch();
    this.lease.conn.socket.write(line, 'latin1');
  }

  /** Cuts the connection: without a confirmed QUIT the backend never enters UPDATE. */
  destroy(): void {
    this.lease.conn.socket.destroy();
  }

  /** Lets go of the connection without telling the session (a routed login failed). */
  detach(): void {
    this.replyTimer.stop();
    const sock = this.lease.conn.socket;
    releaseSocket(sock, this.listeners);
    sock.destroy();
  }
}
