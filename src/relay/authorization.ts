/**
 * The AUTHORIZATION state (RFC 1939 section 4): CAPA, STLS, USER, PASS, APOP,
 * AUTH (RFC 5034) and QUIT, answered by the gateway. Credentials go to the
 * backend only once policy has seen them; every failed login gets the same
 * bytes after the same delay, whatever the real reason.
 */
import { loginRecord } from '../audit/record.ts';
import { REPLIES } from '../protocol/replies.ts';
import { sanitizeLine } from '../protocol/response.ts';
import { Secret, hasForbiddenChars, userFromClientFirst } from '../protocol/sasl.ts';
import { latin1AsUtf8, type Command } from '../protocol/command.ts';
import type { AuthTicket, LoginFailureReason } from '../policy/auth-limits.ts';
import { isOverlongUserName } from '../policy/user-pattern.ts';
import { authVerdict } from '../policy/commands.ts';
import type { Verdict } from '../policy/verdict.ts';
import { LocalSaslExchange, credentialsFromUserPass, isLocalMechanism, offeredMechanisms, type SaslStep } from '../session/sasl-exchange.ts';
import type { ReplyInfo } from '../session/pending.ts';
import { beginRelay, endRelay, readUser, relayClientLine, type RelayState } from './sasl-relay.ts';
import { capaReply, requireTlsFor } from './capa-view.ts';
import { backendLogin, type LoginAttempt } from './backend-login.ts';
import { policyRefusal, policyReport, refuse } from './refusals.ts';
import type { Pop3Session } from './session.ts';

/** Backend refusals that say nothing about the password: relayed, not counted (RFC 2449, 3206). */
const TRANSIENT_CODES = new Set(['IN-USE', 'LOGIN-DELAY', 'SYS']);

export function authorizationCommand(s: Pop3Session, cmd: Command): void {
  const { listener } = s.deps;
  switch (cmd.verb) {
    case 'CAPA':
      s.respond(capaReply(s));
      logCommand(s, 'CAPA', 'ok', 0);
      return;
    case 'QUIT':
      s.respond(REPLIES.quitBeforeLogin);
      logCommand(s, 'QUIT', 'ok', 0);
      s.endAfterReplies('quit');
      return;
    case 'STLS':
      if (listener.tls !== 'starttls') refuse(s, cmd, 'stlsUnavailable');
      else if (s.tlsActive) refuse(s, cmd, 'stlsAlreadyActive');
      else {
        logCommand(s, 'STLS', 'ok', 0);
        void s.startTls();
      }
      return;
  }
  const tlsGate = tlsGateVerdict(s, cmd.verb);
  if (tlsGate.kind === 'deny') {
    policyRefusal(s, cmd, tlsGate);
    return;
  }
  if (tlsReportOnly(s, cmd.verb)) policyReport(s, cmd, 'tls-required');
  const arrival = Date.now();
  switch (cmd.verb) {
    case 'USER':
      // Answered by the gateway itself: never a verdict on whether the user exists.
      s.pendingUser = cmd.args[0]!;
      s.respond(REPLIES.userAccepted);
      logCommand(s, 'USER', 'ok', 0);
      return;
    case 'PASS': {
      const user = s.pendingUser!;
      s.pendingUser = null;
      void login(s, { kind: 'password', credentials: credentialsFromUserPass(user, cmd.rest) }, arrival);
      return;
    }
    case 'APOP':
      if (!apopAvailable(s)) refuse(s, cmd, 'apopUnavailable');
      else void login(s, { kind: 'apop', user: latin1AsUtf8(cmd.args[0]!) ?? cmd.args[0]!, digest: new Secret(cmd.args[1]!) }, arrival);
      return;
    case 'AUTH':
      startAuth(s, cmd);
      return;
  }
}

/** TLS before passwords for `verb` in this session: deny for USER/PASS/APOP/AUTH while TLS is required and absent. */
export function tlsGateVerdict(s: Pop3Session, verb: string): Verdict {
  return authVerdict({ verb, listenerTls: s.deps.listener.tls, requireTls: requireTlsFor(s), tlsActive: s.tlsActive });
}

/** `requireTls: report`: this credential verb before TLS would be refused under enforcement. */
function tlsReportOnly(s: Pop3Session, verb: string): boolean {
  const l = s.deps.listener;
  if (l.requireTlsReport !== true || s.tlsActive || l.tls === 'implicit') return false;
  return authVerdict({ verb, listenerTls: l.tls, requireTls: true, tlsActive: false }).kind === 'deny';
}

/** APOP needs the backend's greeting timestamp, so only when its greeting was relayed. */
function apopAvailable(s: Pop3Session): boolean {
  return s.greetingLine !== null && /<[^<>@\s]+@[^<>\s]+>/.test(s.greetingLine);
}

function startAuth(s: Pop3Session, cmd: Command): void {
  if (cmd.args.length === 0) {
    // Not in RFC 5034, but Outlook and others ask: list what CAPA lists.
    s.respond(`+OK\r\n${mechanisms(s).join('\r\n')}${mechanisms(s).length > 0 ? '\r\n' : ''}.`);
    logCommand(s, 'AUTH', 'ok', 0);
    return;
  }
  const mech = cmd.args[0]!.toUpperCase();
  const initial = cmd.args[1] ?? null;
  if (!mechanisms(s).includes(mech)) {
    refuse(s, cmd, 'mechanismUnsupported');
    return;
  }
  if (isLocalMechanism(mech)) {
    s.sasl = new LocalSaslExchange(mech);
    saslStep(s, s.sasl.start(initial === '=' ? '' : initial), Date.now());
    return;
  }
  void login(s, { kind: 'sasl-relay', mechanism: mech, initial }, Date.now());
}

function mechanisms(s: Pop3Session): string[] {
  const backend = s.backend?.conn.capa ?? s.deps.backends.capabilities();
  return offeredMechanisms(backend?.sasl ?? null, s.deps.backends.routing);
}

/** A client line while an AUTH exchange runs. */
export function onSaslLine(s: Pop3Session, line: Buffer): void {
  s.decoder.maxLength = s.deps.config.limits.commandLine;
  const text = line.toString('latin1');
  if (s.saslRelay !== null) {
    relayClientLine(s, text);
    return;
  }
  const exchange = s.sasl;
  if (exchange === null) {
    s.phase = 'authorization';
    return;
  }
  saslStep(s, exchange.respond(text), Date.now());
}

function saslStep(s: Pop3Session, step: SaslStep, arrival: number): void {
  switch (step.type) {
    case 'challenge':
      s.phase = 'sasl';
      s.decoder.maxLength = s.deps.config.limits.saslLine;
      s.writeLine(`+ ${step.text}`);
      return;
    case 'done':
      s.sasl = null;
      s.phase = 'authorization';
      void login(s, { kind: 'password', credentials: step.credentials }, arrival);
      return;
    case 'fail':
      s.sasl = null;
      s.phase = 'authorization';
      if (step.reason === 'sasl-forbidden-chars') {
        // Looks like any failed login to the client; counted against the source.
        s.busy = true;
        void failLogin(s, null, arrival, 'bad-credential-chars', 'ip')
          .then(() => logCommand(s, 'AUTH', 'err', Date.now() - arrival))
          .catch((err) => s.internalError(err));
      } else {
        s.respond(REPLIES[step.reply]);
        logCommand(s, 'AUTH', 'err', Date.now() - arrival);
      }
  }
}

/** The user the attempt is for; for a relayed mechanism without an initial response, not known yet (null). */
function attemptUser(a: LoginAttempt): string | null {
  if (a.kind === 'password') return a.credentials.user;
  if (a.kind === 'apop') return a.user;
  return a.initial === null ? null : userFromClientFirst(a.mechanism, a.initial);
}

async function login(s: Pop3Session, attempt: LoginAttempt, arrival: number): Promise<void> {
  s.busy = true;
  s.phase = 'login-pending';
  const running = runLogin(s, attempt, arrival);
  s.loginInFlight = running.catch(() => undefined);
  try {
    await running;
    const verb = attempt.kind === 'apop' ? 'APOP' : attempt.kind === 'password' && attempt.credentials.mechanism === 'USER' ? 'PASS' : 'AUTH';
    logCommand(s, verb, s.user !== null ? 'ok' : 'err', Date.now() - arrival);
  } catch (err) {
    s.internalError(err);
  } finally {
    s.loginInFlight = null;
  }
}

async function runLogin(s: Pop3Session, attempt: LoginAttempt, arrival: number): Promise<void> {
  const d = s.deps;
  const ip = s.address.ip;
  let user = attemptUser(attempt);
  const mechanism = attempt.kind === 'password' ? attempt.credentials.mechanism : attempt.kind === 'apop' ? 'APOP' : attempt.mechanism;
  // A relayed mechanism's user comes with its first client message: later (sasl-relay.ts), or now.
  const relay = attempt.kind === 'sasl-relay' && attempt.initial === null ? beginRelay(s, mechanism) : null;
  if (relay === null && attempt.kind === 'sasl-relay' && (user === null || readUser(mechanism, attempt.initial!) === null)) {
    return failLogin(s, null, arrival, 'bad-credential-chars', 'ip');
  }
  // Before any route, rule or counter key sees the name: only the source pays for it.
  if (user !== null && isOverlongUserName(user)) return failLogin(s, null, arrival, 'name-too-long', 'ip');
  if (user !== null && hasForbiddenChars(user)) return failLogin(s, user, arrival, 'bad-credential-chars', 'user');
  if (attempt.kind === 'password' && hasForbiddenChars(attempt.credentials.password.reveal())) {
    return failLogin(s, user, arrival, 'bad-credential-chars', 'user');
  }
  // Charged before anything reaches the backend, under the name the backend will see.
  const password = attempt.kind === 'password' ? attempt.credentials.password.reveal() : null;
  // With the memory store the charge is answered at once: no await, so no microtask either.
  const charging = relay !== null ? null : d.auth.charge(ip, d.backends.loginNameFor(user!), password);
  const charged = charging instanceof Promise ? await charging : charging;
  if (charged !== null && !charged.allowed) {
    d.metrics.login('locked');
    return failLogin(s, user, arrival, charged.reason, 'none');
  }
  let ticket = charged?.ticket ?? null;
  if (s.closing || !(await s.ensureBackend(user))) {
    if (ticket !== null) await d.auth.abandoned(ticket);
    if (relay !== null) endRelay(s);
    if (s.closing) return;
    d.metrics.login('error');
    s.auditLogin('err', { reason: 'backend-unavailable', mechanism });
    return resumeAuthorization(s);
  }
  const sent = Date.now();
  // Once sent, the attempt runs to its end whatever the client does: a hang-up is no escape from the count.
  const reply = await untilClosed(s, backendLogin(s, attempt));
  if (relay !== null) {
    endRelay(s);
    user = relay.user;
    ticket = relay.ticket;
    if (relay.refused !== null) return relayRefused(s, relay.refused, user, arrival, reply);
    // Nothing charged means no credentials went out: the backend ended the exchange before them.
    if (ticket === null) return relayEndedEarly(s, reply);
  }
  if (ticket === null || user === null) throw new Error('a login attempt reached the backend without a charged user');
  if (reply === 'gone') {
    await settleFailure(s, ticket);
    return failLogin(s, user, arrival, 'client-gone', 'none');
  }
  if (reply === null) {
    // The backend offers no way to log in that we can use: say so without blaming the password.
    await d.auth.abandoned(ticket);
    d.metrics.login('error');
    s.auditLogin('err', { reason: 'backend-no-login-method', mechanism });
    s.writeLine(REPLIES.backendUnavailable);
    return resumeAuthorization(s);
  }
  if (reply.ok) {
    const name = user;
    recordSuccess(s, ticket);
    d.metrics.login('ok');
    if (s.closing) {
      s.auditLogin('ok', { mechanism });
      return;
    }
    s.loggedIn(name, d.rules.forSession(name, ip));
    s.auditLogin('ok', { mechanism });
    s.log.info({ event: 'login', user: name, mechanism, result: 'ok', ms: Date.now() - arrival }, 'login ok');
    for (const sig of d.signals.onLogin(name, ip)) s.signal(sig);
    s.writeLine(sanitizeLine(reply.statusLine.toString('latin1')));
    s.busy = false;
    s.drainInput();
    return;
  }
  const code = reply.status.code?.split('/')[0] ?? null;
  if (code !== null && TRANSIENT_CODES.has(code)) {
    await d.auth.abandoned(ticket);
    d.metrics.login('error');
    s.auditLogin('err', { reason: `backend-${reply.status.code!.toLowerCase()}`, mechanism });
    if (s.closing) return;
    s.writeLine(sanitizeLine(reply.statusLine.toString('latin1')));
    return resumeAuthorization(s);
  }
  d.failureLatency.record(Date.now() - sent);
  await settleFailure(s, ticket);
  if (s.deps.backends.routing) s.dropBackend();
  return failLogin(s, user, arrival, 'bad-credentials', 'none');
}

/**
 * The backend's answer to a login, or 'gone' once the session has ended first: what
 * `Promise.race` with the session's `closed` gave, in one promise instead of five.
 */
function untilClosed<T>(s: Pop3Session, answer: Promise<T>): Promise<T | 'gone'> {
  return new Promise((resolve, reject) => {
    s.whenClosed(() => resolve('gone'));
    answer.then(resolve, reject);
  });
}

/** The charge given back and the pair marked known good; the client's reply does not wait for it. */
function recordSuccess(s: Pop3Session, ticket: AuthTicket): void {
  const warn = (err: unknown): void => s.log.warn({ event: 'counter-error', err: String(err) }, 'recording a login failed');
  try {
    const done = s.deps.auth.succeeded(ticket);
    if (done instanceof Promise) done.catch(warn);
  } catch (err) {
    warn(err);
  }
}

/** The relayed exchange's first client line was not forwarded (the backend got "*"). */
function relayRefused(
  s: Pop3Session, why: NonNullable<RelayState['refused']>, user: string | null, arrival: number, reply: ReplyInfo | null | 'gone',
): Promise<void> | void {
  if (reply !== 'gone' && reply?.ok === true) {
    // The backend accepted a cancelled exchange: nothing we can trust about this connection.
    s.log.warn({ event: 'backend-protocol-violation', reason: 'accepted-cancelled-auth' }, 'backend accepted a cancelled AUTH');
    s.dropBackend();
  }
  if (why === 'cancelled') {
    if (s.closing) return;
    s.writeLine(REPLIES.authCancelled);
    return resumeAuthorization(s);
  }
  if (why === 'unreadable') return failLogin(s, null, arrival, 'bad-credential-chars', 'ip');
  s.deps.metrics.login('locked');
  return failLogin(s, user, arrival, why, 'none');
}

/** The backend refused the relayed AUTH before the client's first line (e.g. a bad mechanism). */
function relayEndedEarly(s: Pop3Session, reply: ReplyInfo | null | 'gone'): void {
  if (reply === 'gone' || s.closing) return;
  if (reply?.ok === true) {
    // A login without any credentials seen: never a session without a user.
    s.log.warn({ event: 'backend-protocol-violation', reason: 'login-without-user' }, 'backend logged in without credentials');
    s.dropBackend();
  }
  s.deps.metrics.login('error');
  s.writeLine(reply === null || reply.ok ? REPLIES.backendUnavailable : sanitizeLine(reply.statusLine.toString('latin1')));
  resumeAuthorization(s);
}

async function settleFailure(s: Pop3Session, ticket: AuthTicket): Promise<void> {
  const counted = await s.deps.auth.failed(ticket);
  if (counted.lockout !== null) s.log.warn({ event: 'lockout', kind: counted.lockout }, 'lockout started');
}

/**
 * The one reply to every failed login: same bytes, on one schedule from the command's
 * arrival whatever the reason (failureDelay, or the backend's observed refusal time when
 * longer). Counted, audited and logged even when the client has already gone; only the
 * reply is then left out. `count` charges a failure refused before the backend ('ip': the
 * source only, for a name not fit to key on).
 */
async function failLogin(
  s: Pop3Session, user: string | null, arrival: number, reason: LoginFailureReason, count: 'none' | 'user' | 'ip',
): Promise<void> {
  const d = s.deps;
  if (count !== 'none') await d.auth.recordFailure(s.address.ip, count === 'user' && user !== null ? d.backends.loginNameFor(user) : null, null);
  if (reason !== 'ip-locked' && reason !== 'user-locked') d.metrics.login('failed');
  d.metrics.policyRefusal(reason);
  s.failedLogins++;
  // Failed logins feed the "many users from one source" signal (password spraying).
  if (user !== null && reason !== 'name-too-long') for (const sig of d.signals.onLogin(user, s.address.ip, false)) s.signal(sig);
  // The audit names the user the attempt was for (the session has none yet), so failed logins
  // and lockouts show up in `npm run audit -- --user NAME`; a name with CR/LF/NUL or over-long is left out.
  const named = user !== null && reason !== 'bad-credential-chars' && reason !== 'name-too-long';
  const locked = reason === 'ip-locked' || reason === 'user-locked';
  if (s.auditing) s.audit(loginRecord(named ? { ...s.context, user } : s.context, locked ? 'denied' : 'err', { reason }));
  s.log.info({ event: 'login', result: 'failed', reason, ms: Date.now() - arrival }, 'login failed');
  const wait = d.auth.delayRemaining(s.address.ip, arrival, d.failureLatency.estimate());
  if (wait > 0 && !s.closing) await new Promise((r) => setTimeout(r, wait));
  if (s.closing) return;
  // The policy's verdict: the same reply whatever the reason; the cap attempt also closes.
  const verdict = d.auth.failureVerdict(reason, s.failedLogins);
  s.writeLine(REPLIES[verdict.reply]);
  if (verdict.close === true) {
    s.endAfterReplies('too-many-failures');
    return;
  }
  resumeAuthorization(s);
}

/** The one log line per command handled here (transaction.ts logs the relayed ones). */
function logCommand(s: Pop3Session, verb: string, result: 'ok' | 'err', ms: number): void {
  s.log.info({ event: 'command', verb, result, ms }, 'command');
}

function resumeAuthorization(s: Pop3Session): void {
  s.phase = 'authorization';
  s.pendingUser = null;
  s.busy = false;
  s.drainInput();
}

