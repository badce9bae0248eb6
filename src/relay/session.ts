/**
 * One POP3 session: the only place where the client socket, the backend socket
 * and the session's state meet. Commands are handled one at a time in arrival
 * order; relayed ones are pipelined to the backend and their replies come back
 * through the pending queue, so every reply leaves in the order it was asked for.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { commandRecord, connectRecord, disconnectRecord, loginRecord, logoutRecord, signalRecord } from '../audit/record.ts';
import type { Signal } from '../audit/signals.ts';
import type { AuditFields, MessageRef, SessionContext } from '../audit/record.ts';
import { Abandon } from '../backend/deadline.ts';
import type { BackendLease } from '../backend/directory.ts';
import { parseCommand, serializeCommand, type Command } from '../protocol/command.ts';
import { LineDecoder } from '../protocol/line-decoder.ts';
import { REPLIES, type ReplyKey } from '../protocol/replies.ts';
import { sanitizeLine } from '../protocol/response.ts';
import { isMultiline } from '../protocol/expectation.ts';
import type { SessionRules } from '../policy/rules.ts';
import { PendingQueue, type PendingEntry, type ReplyInfo } from '../session/pending.ts';
import { gate, type Phase } from '../session/state.ts';
import type { LocalSaslExchange } from '../session/sasl-exchange.ts';
import { newSessionId } from '../util/ids.ts';
import { deadlinesOf, type Deadline } from '../util/deadline-queue.ts';
import { IdleWatch } from '../util/idle-watch.ts';
import { sessionLogger, type Logger } from '../util/logger.ts';
import { BackendLink } from './backend-link.ts';
import { attachListeners, detachListeners, releaseSocket, type SocketListeners } from './socket-release.ts';
import type { ClientAddress, SessionDeps } from './deps.ts';
import { authorizationCommand, onSaslLine, tlsGateVerdict } from './authorization.ts';
import { transactionCommand } from './transaction.ts';
import { invalidCommand, policyRefusal, refuse, saslOverflow } from './refusals.ts';

export type { CloseReason, SendOptions, SessionSnapshot } from './session-types.ts';
import type { CloseReason, SendOptions, SessionSnapshot } from './session-types.ts';

/** Internal bodies the gateway keeps for itself (CAPA, UIDL n) stay small. */
const MAX_INTERNAL_BODY = 64 * 1024;
/** Unprocessed client bytes held while the session waits, before it stops reading. */
const MAX_BUFFERED_INPUT = 32 * 1024;
/** Replies the client has not read yet, past which the session stops reading its commands ('drain' resumes). */
const MAX_UNREAD_OUTPUT = 64 * 1024;
/** After our end(), how long the client may take to close its side before the socket is destroyed. */
const CLOSE_GRACE = deadlinesOf(2000);

export class Pop3Session {
  readonly id = newSessionId();
  readonly since = Date.now();
  readonly log: Logger;
  readonly queue = new PendingQueue();
  readonly decoder: LineDecoder;
  phase: Phase = 'authorization';
  user: string | null = null;
  /** The name given with USER, waiting for PASS. */
  pendingUser: string | null = null;
  tlsProtocol: string | false;
  bytesIn = 0;
  bytesOut = 0;
  lastCommand: string | null = null;
  greetingLine: string | null = null;
  rules: SessionRules | null = null;
  sasl: LocalSaslExchange | null = null;
  /** A relayed AUTH exchange waiting for the client's next SASL line. */
  saslRelay: PendingEntry | null = null;
  failedLogins = 0;
  readonly uids = new Map<number, string>();
  readonly sizes = new Map<number, number>();
  readonly deletes = new Map<number, MessageRef>();
  /** Cancels a backend connect in progress when the session ends; null while none is. */
  private connecting: Abandon | null = null;
  /** Set while the session waits on something before reading the next client line. */
  busy = false;
  /** A login attempt still settling (authorization.ts); the disconnect record waits for its login record. */
  loginInFlight: Promise<void> | null = null;
  closing = false;
  private client: Socket;
  private link: BackendLink | null = null;
  /** Unknown or malformed commands so far (limits.maxInvalidCommands ends the session). */
  invalidCount = 0;
  private inputPaused = false;
  /** The login deadline (a shared queue, not a timer per session: it almost never fires). */
  private authTimer: Deadline | null = null;
  /** The idle timeout of the client socket attached now (none between STLS's plain and TLS sockets). */
  private idle: IdleWatch | null = null;
  private quitConfirmed = false;
  private loggedOut = false;
  /** Set once close() has run to its end; `whenClosed` callbacks have run then. */
  private ended = false;
  private onClosed: (() => void)[] | null = null;
  private closedPromise: Promise<void> | null = null;
  /** `ip:port` of the client, `[ip]:port` for IPv6. */
  readonly clientLabel: string;

  constructor(
    readonly deps: SessionDeps,
    socket: Socket,
    readonly address: ClientAddress,
    tlsProtocol: string | false,
  ) {
    this.client = socket;
    this.tlsProtocol = tlsProtocol;
    // `ip:port`, with IPv6 in brackets so the port is unambiguous.
    this.clientLabel = address.ip.includes(':') ? `[${address.ip}]:${address.port}` : `${address.ip}:${address.port}`;
    // The client address on every line (bound once, serialised once): a failed-login line
    // names its source for journald-based fail2ban and for whoever reads the log. Made on the
    // session's first line that is written: at warn, most sessions write none.
    const bindings = { session: this.id, listener: deps.listener.name, client: this.clientLabel };
    this.log = sessionLogger(deps.log, bindings);
    this.decoder = new LineDecoder(deps.config.limits.commandLine);
  }

  /**
   * Runs `fn` when the session has ended, at once if it already has. The listener's connection
   * slot and the registry's entry are let go this way: an `await session.closed` in each kept two
   * suspended async functions and their promises alive for every session's whole life.
   */
  whenClosed(fn: () => void): void {
    if (this.ended) fn();
    else (this.onClosed ??= []).push(fn);
  }

  /** Resolves when the session has ended; made on the first ask (a login, a drain, a test). */
  get closed(): Promise<void> {
    return (this.closedPromise ??= new Promise<void>((resolve) => this.whenClosed(resolve)));
  }

  /** Who and where, for every audit record; rebuilt only when the user or the TLS state changes. */
  get context(): SessionContext {
    const c = this.ctx;
    const user = this.user ?? undefined;
    if (c !== null && c.user === user && c.tls === this.tlsProtocol) return c;
    const ctx: SessionContext = user === undefined
      ? { session: this.id, listener: this.deps.listener.name, client: this.clientLabel, tls: this.tlsProtocol }
      : { session: this.id, listener: this.deps.listener.name, client: this.clientLabel, tls: this.tlsProtocol, user };
    this.ctx = ctx;
    return ctx;
  }

  private ctx: SessionContext | null = null;

  /** The backend connection, once there is one. */
  get backend(): BackendLease | null {
    return this.link?.lease ?? null;
  }

  get tlsActive(): boolean {
    return this.tlsProtocol !== false;
  }

  snapshot(): SessionSnapshot {
    return {
      id: this.id, user: this.user, client: this.clientLabel,
      listener: this.deps.listener.name, tls: this.tlsProtocol, since: new Date(this.since).toISOString(),
      bytesIn: this.bytesIn, bytesOut: this.bytesOut, lastCommand: this.lastCommand, state: this.phase,
    };
  }

  /** Whether records are written at all: without an audit file none is built (`if (s.auditing) s.audit(...)`). */
  get auditing(): boolean {
    return this.deps.audit.enabled;
  }

  audit(fields: AuditFields): void {
    this.deps.audit.write(fields);
  }

  /** Begins the session: greets (by itself or with the backend's greeting). */
  async start(): Promise<void> {
    this.attachClient(this.client);
    this.deps.metrics.sessionOpened(this.deps.listener.name);
    if (this.auditing) this.audit(connectRecord(this.context));
    // `client` is one of the child logger's bindings: naming it here too wrote the key twice.
    this.log.info({ event: 'session-start', tls: this.tlsProtocol }, 'session start');
    this.authTimer = deadlinesOf(this.deps.config.policy.timeouts.auth).add(() => this.timeout('auth-timeout'));
    const cfg = this.deps.config.backend;
    if (cfg.connect === 'on-accept' && !this.deps.backends.routing) {
      this.busy = true;
      const ok = await this.ensureBackend(null);
      if (!ok) return;
      this.greetingLine = sanitizeLine(this.backend!.conn.greetingLine);
      this.writeLine(this.greetingLine);
      this.busy = false;
      this.drainInput();
      return;
    }
    this.writeLine(REPLIES.greeting);
  }

  // ---- client side ---------------------------------------------------------

  private attachClient(sock: Socket): void {
    // No setNoDelay here: the listener's server sets TCP_NODELAY on every accepted socket, and
    // on a TLSSocket the call goes past Node's "already set" check to the TCP handle: one more
    // setsockopt per session for nothing (bench/syscalls.ts: 3 against the pipe's 2).
    this.idle = new IdleWatch(this.deps.config.policy.timeouts.idle, this.onClientTimeout);
    attachListeners(sock, this.clientListeners);
    sock.on('error', this.onClientError);
  }

  /** Takes the session's listeners off a client socket, all but 'error' (STLS keeps it on the plain one until the upgrade). */
  private detachClient(sock: Socket): void {
    detachListeners(sock, this.clientListeners);
    this.idle?.stop();
    this.idle = null;
  }

  private readonly onClientData = (chunk: Buffer): void => {
    this.idle?.touch();
    this.bytesIn += chunk.length;
    this.deps.metrics.bytes('client_to_backend', chunk.length);
    if (this.closing || this.phase === 'stls-pending') return;
    this.decoder.feed(chunk);
    this.drainInput();
  };

  private readonly onClientDrain = (): void => {
    this.idle?.touch();
    this.link?.resumeAfterClientDrain();
    if (this.inputPaused) this.drainInput();
  };

  private readonly onClientTimeout = (): void => this.timeout('idle-timeout');
  private readonly onClientClose = (): void => {
    this.releaseClient(this.client);
    this.close('client-closed');
  };

  /** Drops all of the session's listeners from its closed client socket (see socket-release.ts). */
  private releaseClient(sock: Socket): void {
    this.detachClient(sock);
    releaseSocket(sock, [['error', this.onClientError]]);
  }

  private readonly onClientError = (err: Error): void => {
    this.log.debug({ event: 'client-error', err: err.message }, 'client socket error');
  };

  /** The client socket's listeners besides 'error'. Declared after the handlers: a field initializer sees only the fields above it. */
  private readonly clientListeners: SocketListeners = [
    ['data', this.onClientData], ['drain', this.onClientDrain], ['close', this.onClientClose],
  ];

  /** Reads and handles client lines until something makes the session wait. */
  drainInput(): void {
    try {
      while (!this.busy && !this.closing && this.phase !== 'stls-pending') {
        // Also while the client leaves its replies unread: every command could add a reply
        // (CAPA, -ERR) to the socket's buffer, so reading on would let it grow without bound.
        const unread = this.client.writableNeedDrain && this.client.writableLength > MAX_UNREAD_OUTPUT;
        if (this.queue.clientDepth >= this.deps.config.limits.pipelineDepth || this.link?.writeBlocked === true || unread) {
          if (!this.inputPaused) {
            this.inputPaused = true;
            this.client.pause();
          }
          return;
        }
        const ev = this.decoder.next();
        if (ev === null) break;
        if (ev.type === 'overflow') {
          if (this.phase === 'sasl') saslOverflow(this);
          else invalidCommand(this, 'lineTooLong');
          continue;
        }
        this.onLine(ev.line);
      }
      // While the session waits (login, a full pipeline), stop reading once a
      // little is buffered: a client cannot make the gateway hold more than that.
      const hold = this.decoder.buffered > MAX_BUFFERED_INPUT;
      if (hold && !this.inputPaused) {
        this.inputPaused = true;
        this.client.pause();
      } else if (!hold && this.inputPaused && !this.closing) {
        this.inputPaused = false;
        this.client.resume();
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  private onLine(line: Buffer): void {
    if (this.phase === 'sasl') {
      onSaslLine(this, line);
      return;
    }
    const parsed = parseCommand(line);
    if (!parsed.ok) {
      invalidCommand(this, parsed.error === 'bad-verb' ? 'unknownCommand' : 'badSyntax');
      return;
    }
    const cmd = parsed.command;
    this.lastCommand = cmd.verb;
    const g = gate(this.phase, cmd.verb, cmd.args, this.pendingUser !== null);
    if (!g.ok) {
      // PASS before STLS: the missing TLS, not the missing USER, is what the client must hear about.
      const tlsFirst = g.reply === 'passWithoutUser' ? tlsGateVerdict(this, cmd.verb) : null;
      if (g.reply === 'unknownCommand' || g.reply === 'badSyntax') invalidCommand(this, g.reply, cmd.verb);
      else if (tlsFirst?.kind === 'deny') policyRefusal(this, cmd, tlsFirst);
      else refuse(this, cmd, g.reply);
      return;
    }
    const allowed = this.deps.commands.check(this.deps.listener.name, cmd.verb);
    if (allowed.kind === 'deny') {
      policyRefusal(this, cmd, allowed);
      return;
    }
    if (this.phase === 'authorization') authorizationCommand(this, cmd);
    else transactionCommand(this, cmd);
  }

  // ---- writing -------------------------------------------------------------

  writeClient(buf: Buffer): boolean {
    if (this.client.destroyed) return true;
    this.idle?.touch();
    this.bytesOut += buf.length;
    this.deps.metrics.bytes('backend_to_client', buf.length);
    return this.client.write(buf);
  }

  writeLine(text: string): void {
    this.writeClient(Buffer.from(`${text}\r\n`, 'latin1'));
  }

  /** A line to the backend outside the command queue (a relayed SASL response). */
  writeBackendLine(line: string): void {
    this.link?.writeLine(line);
  }

  /** Writes a reply now, or after the replies still owed to earlier commands. */
  respond(text: string): void {
    if (this.queue.length === 0) this.writeLine(text);
    else this.queue.push({ kind: 'local', verb: '', args: [], wire: null, localReply: text, multiline: false, startedAt: Date.now(), sent: true });
  }

  // ---- backend side --------------------------------------------------------

  /** Connects the backend if needed; on failure answers the client and (pre-login) keeps the session. */
  async ensureBackend(user: string | null): Promise<boolean> {
    if (this.backend !== null) return true;
    try {
      this.connecting = new Abandon();
      const lease = await this.deps.backends.connect(user, this.address, this.connecting);
      this.connecting = null;
      if (this.closing) {
        lease.conn.socket.destroy();
        return false;
      }
      this.adoptBackend(lease);
      return true;
    } catch (err) {
      this.connecting = null;
      if (this.closing) return false;
      const code = (err as { code?: string }).code ?? 'ERROR';
      this.log.warn({ event: 'backend-unavailable', code, err: (err as Error).message }, 'backend unavailable');
      this.writeLine(REPLIES.backendUnavailable);
      if (this.deps.config.backend.connect === 'on-accept' && this.greetingLine === null && !this.deps.backends.routing) {
        this.close('backend-error');
      }
      return false;
    }
  }

  private adoptBackend(lease: BackendLease): void {
    // The probe already knows the default backend's CAPA, so its sessions do not ask again.
    const capa = lease.conn.capa ?? (lease.route === 'default' ? this.deps.backends.capabilities() : null);
    const limits = this.deps.config.limits;
    this.link = new BackendLink(lease, this.queue, {
      responseLine: limits.responseLine, maxMultiline: limits.maxMultiline, maxInternalBody: MAX_INTERNAL_BODY,
    }, capa?.pipelining ?? false, this.deps.config.policy.timeouts.backendReply, {
      writeClient: (buf) => this.writeClient(buf),
      done: (entry, reply) => this.entryDone(entry, reply),
      continuation: (entry, line) => this.continuation(entry, line),
      violation: (reason) => this.violation(reason),
      closed: () => this.backendClosed(),
      timedOut: () => this.timeout('backend-timeout'),
      writable: () => this.drainInput(),
      failed: (err) => this.internalError(err),
      debug: (obj, msg) => this.log.debug(obj, msg),
    });
    if (this.link.hasLeftover) this.violation('unsolicited-reply');
  }

  private backendClosed(): void {
    if (this.closing) return;
    if (this.phase === 'update' && this.queue.length === 0) {
      this.close('quit');
      return;
    }
    this.log.warn({ event: 'backend-closed', phase: this.phase }, 'backend closed the connection');
    this.endWith('backendUnavailable', 'backend-closed');
  }

  /** Sends every queued command the backend may take now. */
  pump(): void {
    if (!this.closing) this.link?.pump();
  }

  /** Queues a command to the backend; `onReply` runs when its whole reply is in. */
  enqueue(kind: 'relay' | 'internal', verb: string, args: readonly string[], opts: SendOptions & {
    onReply?: (reply: ReplyInfo) => void;
  } = {}): void {
    this.queueCommand(kind, verb, args, opts, opts.onReply);
  }

  /** Queues a command to the backend; resolves with its reply. */
  send(kind: 'relay' | 'internal', verb: string, args: readonly string[], opts: SendOptions = {}): Promise<ReplyInfo> {
    // The reply callback goes beside the options, not spread into a copy of them per command.
    return new Promise((resolve) => this.queueCommand(kind, verb, args, opts, resolve));
  }

  private queueCommand(kind: 'relay' | 'internal', verb: string, args: readonly string[], opts: SendOptions,
    onReply: ((reply: ReplyInfo) => void) | undefined): void {
    this.queue.push({
      kind, verb, args, wire: opts.wire ?? serializeCommand(verb, args), localReply: null,
      multiline: opts.multiline ?? isMultiline(verb, args.length), startedAt: Date.now(), sent: false,
      sasl: opts.sasl ?? false, onReply, onBody: opts.onBody,
    });
    this.pump();
  }

  /** Lets go of the backend connection without ending the session (a routed login failed). */
  dropBackend(): void {
    this.link?.detach();
    this.link = null;
  }

  signal(sig: Signal): void {
    this.deps.metrics.signal(sig.signal);
    if (this.auditing) this.audit(signalRecord(this.context, sig));
    this.log.warn({ event: 'signal', signal: sig.signal }, 'audit signal');
  }

  private entryDone(entry: PendingEntry, reply: ReplyInfo): void {
    this.queue.shift();
    if (entry.sasl === true) this.saslRelay = null;
    try {
      entry.onReply?.(reply);
    } catch (err) {
      this.internalError(err);
      return;
    }
    this.flushLocals();
    this.pump();
    this.drainInput();
  }

  private flushLocals(): void {
    for (let e = this.queue.peek(); e !== undefined && e.kind === 'local'; e = this.queue.peek()) {
      this.queue.shift();
      this.writeLine(e.localReply!);
    }
    if (this.queue.length === 0 && this.pendingEnd !== null) this.close(this.pendingEnd);
  }

  private continuation(entry: PendingEntry, line: Buffer): void {
    if (entry.sasl !== true) {
      this.violation('unexpected-continuation');
      return;
    }
    this.writeClient(line);
    this.saslRelay = entry;
    this.phase = 'sasl';
    this.decoder.maxLength = this.deps.config.limits.saslLine;
    this.busy = false;
    this.drainInput();
  }

  private violation(reason: string): void {
    this.log.warn({ event: 'backend-protocol-violation', reason }, 'backend protocol violation');
    this.endWith('backendProtocol', 'protocol-violation');
  }

  // ---- phases --------------------------------------------------------------

  loggedIn(user: string, rules: SessionRules): void {
    this.user = user;
    this.rules = rules;
    this.phase = 'transaction';
    this.authTimer?.cancel();
    this.authTimer = null;
  }

  quitConfirmedByBackend(): void {
    this.quitConfirmed = true;
  }

  /** Writes the logout record: DELEs count only after a QUIT the backend confirmed. */
  private logout(): void {
    if (this.user === null || this.loggedOut) return;
    this.loggedOut = true;
    if (!this.auditing) return;
    const marked = [...this.deletes.values()];
    const deleted = this.quitConfirmed ? marked : [];
    const notDeleted = this.quitConfirmed ? [] : marked;
    this.audit(logoutRecord(this.context, deleted, notDeleted, this.quitConfirmed));
  }

  /** TLS upgrade of the client connection (STLS). Buffered plaintext is dropped first. */
  async startTls(): Promise<void> {
    this.phase = 'stls-pending';
    this.decoder.clear();
    const raw = this.client;
    this.writeLine(REPLIES.stlsBegin);
    this.detachClient(raw);
    raw.pause();
    try {
      const secure: TLSSocket = await this.deps.tls.upgrade(raw, this.deps.listener.name);
      if (this.closing) {
        secure.destroy();
        return;
      }
      this.client = secure;
      this.tlsProtocol = secure.getProtocol() ?? 'TLS';
      this.attachClient(secure);
      // The TLS socket reports the connection's errors from here on; the plain one must not keep the session.
      releaseSocket(raw, [['error', this.onClientError]]);
      this.decoder.clear();
      this.pendingUser = null;
      this.phase = 'authorization';
      this.log.info({ event: 'stls', tls: this.tlsProtocol }, 'client upgraded to TLS');
      this.drainInput();
    } catch (err) {
      this.log.info({ event: 'tls-failed', err: (err as Error).message }, 'STLS handshake failed');
      this.close('tls-failed');
    }
  }

  // ---- ending --------------------------------------------------------------

  private pendingEnd: CloseReason | null = null;

  /** Closes once every reply owed to the client is written. */
  endAfterReplies(reason: CloseReason): void {
    this.busy = true;
    if (this.queue.length === 0) this.close(reason);
    else this.pendingEnd = reason;
  }

  private timeout(reason: 'idle-timeout' | 'auth-timeout' | 'backend-timeout'): void {
    if (this.closing) return;
    const reply: ReplyKey = reason === 'idle-timeout' ? 'idleTimeout' : reason === 'auth-timeout' ? 'authTimeout' : 'backendTimeout';
    this.endWith(reply, reason);
  }

  /** Ends the session at once (admin kick, shutdown): the backend never reaches UPDATE. */
  kick(reason: 'kicked' | 'shutdown'): void {
    this.endWith(reason === 'kicked' ? 'kicked' : 'shuttingDown', reason);
  }

  internalError(err: unknown): void {
    this.log.error({ event: 'internal-error', err: err instanceof Error ? err.stack : String(err) }, 'internal error in session');
    try {
      this.endWith('internalError', 'internal-error');
    } catch {
      // Writing may be what failed; the session ends either way.
      this.close('internal-error');
    }
  }

  /**
   * Ends the session with a last -ERR of the gateway's own, written only when the client is
   * between replies. In the middle of a relayed body the connection just closes: the client
   * sees a body without its terminator (and discards it), never an -ERR inside the message.
   */
  private endWith(reply: ReplyKey, reason: CloseReason): void {
    if (this.closing) return;
    if (this.link?.midReply === true) this.log.warn({ event: 'body-cut', reason }, 'closing in the middle of a relayed body');
    else this.writeLine(REPLIES[reply]);
    this.close(reason);
  }

  close(reason: CloseReason): void {
    if (this.closing) return;
    this.closing = true;
    try {
      this.endSession(reason);
    } finally {
      // Also if ending threw: the connection slot and the registry entry are let go regardless.
      this.runClosedCallbacks();
    }
  }

  private endSession(reason: CloseReason): void {
    this.phase = 'closed';
    // Only a connect still in progress listens.
    this.connecting?.abort();
    this.authTimer?.cancel();
    // Without a confirmed QUIT the backend connection is cut, so it never enters UPDATE.
    this.link?.destroy();
    this.logout();
    const durationMs = Date.now() - this.since;
    if (this.auditing) {
      const disconnect = disconnectRecord(this.context, { bytesIn: this.bytesIn, bytesOut: this.bytesOut, durationMs, reason });
      // A client that hangs up mid-login: its attempt is still audited, and before the disconnect.
      if (this.loginInFlight === null) this.audit(disconnect);
      else void this.loginInFlight.finally(() => this.audit(disconnect));
    }
    this.log.info({ event: 'session-end', reason, user: this.user, bytesIn: this.bytesIn, bytesOut: this.bytesOut, ms: durationMs }, 'session end');
    this.deps.metrics.sessionClosed(this.deps.listener.name);
    const sock = this.client;
    this.idle?.stop();
    if (!sock.destroyed) {
      sock.end();
      // A client that never closes its side is cut after the grace; destroy() on a closed socket is a no-op.
      const grace = CLOSE_GRACE.add(() => sock.destroy());
      sock.once('close', () => grace.cancel());
    }
    this.queue.clear();
  }

  private runClosedCallbacks(): void {
    this.ended = true;
    const onClosed = this.onClosed;
    this.onClosed = null;
    if (onClosed === null) return;
    for (const fn of onClosed) {
      // Each runs whatever another does: a slot not given back would refuse this client for good.
      try {
        fn();
      } catch (err) {
        this.log.error({ event: 'internal-error', err: err instanceof Error ? err.stack : String(err) }, 'session end callback failed');
      }
    }
  }

  /** Audit helper for mail-access commands. */
  auditCommand(cmd: Command, result: 'ok' | 'err' | 'denied', extra: Parameters<typeof commandRecord>[4] = {}): void {
    if (this.auditing) this.audit(commandRecord(this.context, cmd.verb, cmd.args, result, extra));
  }

  auditLogin(result: 'ok' | 'err' | 'denied', opts: Parameters<typeof loginRecord>[2]): void {
    if (this.auditing) this.audit(loginRecord(this.context, result, opts));
  }
}
