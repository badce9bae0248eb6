/**
 * The TRANSACTION state (RFC 1939 section 5): rules after login, the gateway's
 * own UIDL/LIST look-ups so the audit names messages by unique-id, and DELE
 * bookkeeping that only becomes "deleted" once the backend confirms QUIT.
 */
import { HeaderCapture } from '../audit/headers.ts';
import type { Command } from '../protocol/command.ts';
import type { Reservation } from '../policy/rules.ts';
import type { ReplyInfo } from '../session/pending.ts';
import { capaReply } from './capa-view.ts';
import { policyRefusal, policyReport } from './refusals.ts';
import type { Pop3Session } from './session.ts';

const MESSAGE_VERBS = new Set(['RETR', 'TOP', 'DELE']);

export function transactionCommand(s: Pop3Session, cmd: Command, sizeAsked = false): void {
  const d = s.deps;
  const verb = cmd.verb;
  const msg = MESSAGE_VERBS.has(verb) ? Number(cmd.args[0]) : null;
  if (msg !== null && s.rules !== null && s.rules.needsSize(verb) && !s.sizes.has(msg) && !sizeAsked) {
    // A rule caps the session's bytes: learn the size (LIST n) before the verdict, so a
    // message that would cross the cap is refused before any of it is relayed.
    s.busy = true;
    s.enqueue('internal', 'LIST', [String(msg)], {
      multiline: false,
      onReply: (r) => {
        const size = r.ok ? Number(r.status.text.trim().split(/\s+/)[1]) : NaN;
        if (Number.isFinite(size)) s.sizes.set(msg, size);
        s.busy = false;
        transactionCommand(s, cmd, true);
      },
    });
    return;
  }
  let reservation: Reservation | null = null;
  if (s.rules !== null) {
    // Admitted in client order, before it is queued: a RETR/TOP reserves its share of the caps
    // now (TOP: the whole message's size as an upper bound), and its reply settles it.
    const admission = s.rules.admit(verb, msg === null ? null : (s.sizes.get(msg) ?? null));
    const verdict = admission.verdict;
    if (verdict.kind === 'deny') {
      policyRefusal(s, cmd, verdict);
      if (msg !== null) s.auditCommand(cmd, 'denied', { msg, uid: s.uids.get(msg) ?? null, reason: verdict.reason });
      return;
    }
    if (verdict.kind === 'report') policyReport(s, cmd, verdict.reason);
    reservation = admission.reservation;
  }
  if (verb === 'CAPA') {
    s.respond(capaReply(s));
    logCommand(s, verb, 'ok', 0);
    return;
  }
  if (verb === 'QUIT') {
    quit(s, cmd);
    return;
  }
  if (msg !== null) lookUp(s, msg);
  const capture = (verb === 'RETR' || verb === 'TOP') && d.config.logging.auditHeaders.length > 0 && d.config.logging.audit !== null
    ? new HeaderCapture(d.config.logging.auditHeaders)
    : null;
  const started = Date.now();
  s.enqueue('relay', verb, cmd.args, {
    onBody: capture === null ? undefined : (slice) => {
      if (!capture.done) capture.push(slice);
    },
    onReply: (reply) => {
      reservation?.settle(reply.ok ? reply.octets : null);
      finished(s, cmd, msg, reply, started, capture);
    },
  });
}

/**
 * Learns the unique-id and size of message `msg` with the gateway's own
 * `UIDL n` / `LIST n`, pipelined ahead of the client's command. The client sees nothing.
 */
function lookUp(s: Pop3Session, msg: number): void {
  const wantsAudit = s.deps.config.logging.audit !== null;
  const capa = s.backend?.conn.capa ?? s.deps.backends.capabilities();
  if (wantsAudit && !s.uids.has(msg) && (capa === null || capa.has('UIDL'))) {
    s.enqueue('internal', 'UIDL', [String(msg)], {
      multiline: false,
      onReply: (r) => {
        const uid = r.ok ? r.status.text.trim().split(/\s+/)[1] : undefined;
        if (uid !== undefined) s.uids.set(msg, uid);
      },
    });
  }
  if ((wantsAudit || s.rules?.matched !== null) && !s.sizes.has(msg)) {
    s.enqueue('internal', 'LIST', [String(msg)], {
      multiline: false,
      onReply: (r) => {
        const size = r.ok ? Number(r.status.text.trim().split(/\s+/)[1]) : NaN;
        if (Number.isFinite(size)) s.sizes.set(msg, size);
      },
    });
  }
}

function finished(s: Pop3Session, cmd: Command, msg: number | null, reply: ReplyInfo, started: number, capture: HeaderCapture | null): void {
  const d = s.deps;
  const verb = cmd.verb;
  const result = reply.ok ? 'ok' : 'err';
  logCommand(s, verb, result, Date.now() - started, msg);
  if (verb === 'RSET' && reply.ok) s.deletes.clear();
  if (msg === null) {
    if (verb !== 'NOOP') s.auditCommand(cmd, result);
    return;
  }
  const uid = s.uids.get(msg) ?? null;
  const size = s.sizes.get(msg) ?? null;
  if ((verb === 'RETR' || verb === 'TOP') && reply.ok) {
    if (s.user !== null) for (const sig of d.signals.onRetrieved(s.user, reply.octets)) s.signal(sig);
  }
  if (verb === 'DELE' && reply.ok) {
    s.deletes.set(msg, { msg, uid, size });
    for (const sig of d.signals.onDele(s.deletes.size)) s.signal(sig);
  }
  const extra: Parameters<Pop3Session['auditCommand']>[2] = { msg, uid, size };
  if (verb !== 'DELE') extra.octets = reply.octets;
  if (capture !== null && reply.ok) extra.headers = capture.result();
  s.auditCommand(cmd, result, extra);
}

/** QUIT: only a +OK from the backend means its UPDATE state ran and the DELEs took effect. */
function quit(s: Pop3Session, cmd: Command): void {
  s.phase = 'update';
  s.busy = true;
  const started = Date.now();
  s.enqueue('relay', 'QUIT', [], {
    onReply: (reply) => {
      if (reply.ok) s.quitConfirmedByBackend();
      logCommand(s, 'QUIT', reply.ok ? 'ok' : 'err', Date.now() - started);
      s.auditCommand(cmd, reply.ok ? 'ok' : 'err');
      s.endAfterReplies('quit');
    },
  });
}

function logCommand(s: Pop3Session, verb: string, result: 'ok' | 'err', ms: number, msg: number | null = null): void {
  s.deps.metrics.command(verb, result, ms / 1000);
  // Not `msg`: that is pino's message key, and the message number would be overwritten.
  s.log.info({ event: 'command', verb, msgNum: msg ?? undefined, result, ms }, 'command');
}
