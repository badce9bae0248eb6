/**
 * Builders for audit records. Pure: the session hands in what happened, these decide what
 * may be written. Secrets are dropped here, at construction, so no later stage (sink, chain,
 * query) ever holds a PASS argument, an APOP digest or SASL data.
 */
import { KNOWN_VERBS } from '../config/schema.ts';

export type AuditEvent = 'connect' | 'login' | 'command' | 'logout' | 'disconnect' | 'policy' | 'signal';
export type AuditResult = 'ok' | 'err' | 'denied' | 'would-deny';

export interface SessionContext {
  readonly session: string;
  readonly listener: string;
  /** ip:port of the client (the PROXY header's source when one was accepted). */
  readonly client: string;
  /** Negotiated protocol ("TLSv1.3") or false for plaintext. */
  readonly tls: string | false;
  readonly user?: string;
}

export interface MessageRef {
  readonly msg: number;
  readonly uid?: string | null;
  readonly size?: number | null;
}

export interface AuditFields {
  session: string;
  listener: string;
  client: string;
  tls: string | false;
  user?: string;
  event: AuditEvent;
  command?: string;
  args?: string;
  result?: AuditResult;
  reason?: string;
  msg?: number;
  uid?: string | null;
  size?: number | null;
  octets?: number;
  headers?: Record<string, string>;
  mechanism?: string;
  deleted?: MessageRef[];
  notDeleted?: MessageRef[];
  bytesIn?: number;
  bytesOut?: number;
  durationMs?: number;
  signal?: string;
  detail?: Record<string, unknown>;
}

export interface CommandExtra {
  msg?: number;
  uid?: string | null;
  size?: number | null;
  octets?: number;
  headers?: Record<string, string>;
  reason?: string;
}

/** Arguments are capped so one record stays one readable line; RFC 1939 args are ≤ 40 chars. */
const MAX_ARGS_CHARS = 200;
/** RFC 4422 §3.1: mechanism names are 1–20 of [A-Z0-9-_]. */
const SASL_MECHANISM = /^[A-Za-z0-9_-]{1,20}$/;
/** RFC 1939 §3: keywords are three or four characters. */
const VERB_SHAPE = /^[A-Z]{3,4}$/;
const KNOWN = new Set<string>(KNOWN_VERBS);
/** Commands whose first argument is a message number. */
const MESSAGE_VERBS = new Set(['RETR', 'TOP', 'DELE', 'LIST', 'UIDL']);

function base(ctx: SessionContext, event: AuditEvent): AuditFields {
  const out: AuditFields = {
    session: ctx.session,
    listener: ctx.listener,
    client: ctx.client,
    tls: ctx.tls,
    event,
  };
  if (ctx.user !== undefined) out.user = ctx.user;
  return out;
}

export function connectRecord(ctx: SessionContext): AuditFields {
  return base(ctx, 'connect');
}

export function loginRecord(
  ctx: SessionContext,
  result: 'ok' | 'err' | 'denied',
  opts: { reason?: string; mechanism?: string } = {},
): AuditFields {
  const out = base(ctx, 'login');
  out.result = result;
  if (opts.mechanism !== undefined) out.mechanism = safeMechanism(opts.mechanism);
  if (opts.reason !== undefined) out.reason = opts.reason;
  return out;
}

/**
 * One mail-access (or pre-login) command. PASS and APOP keep no argument at all; AUTH keeps
 * only a well-formed mechanism name. A verb that is neither known nor shaped like a keyword is
 * written as OTHER with no arguments: a confused client that types its password on a line of
 * its own must not have it land in the audit as a "command".
 */
export function commandRecord(
  ctx: SessionContext,
  verb: string,
  args: readonly string[],
  result: AuditResult,
  extra: CommandExtra = {},
): AuditFields {
  const out = base(ctx, 'command');
  const upper = verb.toUpperCase();
  out.result = result;
  if (upper === 'PASS' || upper === 'APOP') {
    out.command = upper;
  } else if (upper === 'AUTH') {
    out.command = upper;
    if (args[0] !== undefined) out.mechanism = safeMechanism(args[0]);
  } else if (KNOWN.has(upper)) {
    out.command = upper;
    if (args.length > 0) out.args = capArgs(args.join(' '));
    const n = MESSAGE_VERBS.has(upper) ? messageNumber(args[0]) : undefined;
    if (n !== undefined) out.msg = n;
  } else {
    out.command = VERB_SHAPE.test(upper) ? upper : 'OTHER';
  }
  if (extra.msg !== undefined) out.msg = extra.msg;
  if (extra.uid !== undefined) out.uid = extra.uid;
  if (extra.size !== undefined) out.size = extra.size;
  if (extra.octets !== undefined) out.octets = extra.octets;
  if (extra.headers !== undefined) out.headers = { ...extra.headers };
  if (extra.reason !== undefined) out.reason = extra.reason;
  return out;
}

/** A refusal by policy. Report-only rules record what would have been refused. */
export function policyRecord(
  ctx: SessionContext,
  reason: string,
  opts: { command?: string; mode: 'enforce' | 'report' },
): AuditFields {
  const out = base(ctx, 'policy');
  if (opts.command !== undefined) {
    const upper = opts.command.toUpperCase();
    out.command = KNOWN.has(upper) || VERB_SHAPE.test(upper) ? upper : 'OTHER';
  }
  out.result = opts.mode === 'enforce' ? 'denied' : 'would-deny';
  out.reason = reason;
  return out;
}

/**
 * End of the mail session. DELE marks take effect only in the UPDATE state, i.e. after the
 * backend confirmed QUIT (RFC 1939 §6): without that confirmation nothing was deleted,
 * whatever the caller passes in `deleted`.
 */
export function logoutRecord(
  ctx: SessionContext,
  deleted: readonly MessageRef[],
  notDeleted: readonly MessageRef[],
  quitConfirmed: boolean,
): AuditFields {
  const out = base(ctx, 'logout');
  out.result = quitConfirmed ? 'ok' : 'err';
  out.deleted = quitConfirmed ? deleted.map(copyRef) : [];
  out.notDeleted = quitConfirmed
    ? notDeleted.map(copyRef)
    : [...deleted, ...notDeleted].map(copyRef);
  if (!quitConfirmed) out.reason = 'quit-not-confirmed';
  return out;
}

export function disconnectRecord(
  ctx: SessionContext,
  stats: { bytesIn: number; bytesOut: number; durationMs: number; reason?: string },
): AuditFields {
  const out = base(ctx, 'disconnect');
  out.bytesIn = stats.bytesIn;
  out.bytesOut = stats.bytesOut;
  out.durationMs = Math.round(stats.durationMs);
  if (stats.reason !== undefined) out.reason = stats.reason;
  return out;
}

/** A behavioural signal (signals.ts) raised during this session. */
export function signalRecord(
  ctx: SessionContext,
  sig: { signal: string; detail: Record<string, unknown> },
): AuditFields {
  const out = base(ctx, 'signal');
  out.signal = sig.signal;
  out.detail = { ...sig.detail };
  return out;
}

function safeMechanism(m: string): string {
  return SASL_MECHANISM.test(m) ? m.toUpperCase() : 'INVALID';
}

function capArgs(s: string): string {
  return s.length > MAX_ARGS_CHARS ? `${s.slice(0, MAX_ARGS_CHARS)}…` : s;
}

function messageNumber(arg: string | undefined): number | undefined {
  if (arg === undefined || !/^\d{1,9}$/.test(arg)) return undefined;
  const n = Number(arg);
  return n > 0 ? n : undefined;
}

function copyRef(r: MessageRef): MessageRef {
  const out: { msg: number; uid?: string | null; size?: number | null } = { msg: r.msg };
  if (r.uid !== undefined) out.uid = r.uid;
  if (r.size !== undefined) out.size = r.size;
  return out;
}
