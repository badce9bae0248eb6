/**
 * Commands the gateway answers with a refusal: state or syntax errors, policy
 * verdicts (and report-mode "would refuse"), and the invalid-command budget.
 * Each is counted, logged and, for policy, audited with its reason.
 */
import { policyRecord } from '../audit/record.ts';
import { KNOWN_VERBS } from '../config/schema.ts';
import type { Command } from '../protocol/command.ts';
import { REPLIES, type ReplyKey } from '../protocol/replies.ts';
import type { Verdict } from '../policy/verdict.ts';
import { onSaslLine } from './authorization.ts';
import type { Pop3Session } from './session.ts';

/** A command the gateway refuses with a reply; the session goes on. */
export function refuse(s: Pop3Session, cmd: Command, reply: ReplyKey): void {
  s.deps.metrics.command(cmd.verb, 'err', 0);
  s.log.info({ event: 'command', verb: cmd.verb, result: 'err', reply, ms: 0 }, 'command refused');
  s.respond(REPLIES[reply]);
}

/** A refusal decided by policy: logged, audited and counted with its reason. */
export function policyRefusal(s: Pop3Session, cmd: Command, verdict: Verdict & { kind: 'deny' }): void {
  s.deps.metrics.policyRefusal(verdict.reason);
  s.deps.metrics.command(cmd.verb, 'denied', 0);
  if (s.auditing) s.audit(policyRecord(s.context, verdict.reason, { command: cmd.verb, mode: 'enforce' }));
  s.log.info({ event: 'policy', verb: cmd.verb, reason: verdict.reason, result: 'denied' }, 'command denied by policy');
  s.respond(REPLIES[verdict.reply]);
  if (verdict.close === true) s.endAfterReplies('protocol-violation');
}

/** A rule in report mode would have refused: audited, not enforced. */
export function policyReport(s: Pop3Session, cmd: Command, reason: string): void {
  if (s.auditing) s.audit(policyRecord(s.context, reason, { command: cmd.verb, mode: 'report' }));
  s.log.info({ event: 'policy', verb: cmd.verb, reason, result: 'would-deny' }, 'rule would deny (report mode)');
}

/**
 * A SASL response over limits.saslLine ends the exchange as a "*" would (RFC 5034 section 4);
 * otherwise the client's next command would be taken as SASL data (and relayed to the backend).
 */
export function saslOverflow(s: Pop3Session): void {
  if (s.saslRelay !== null) {
    onSaslLine(s, Buffer.from('*', 'latin1')); // the backend's -ERR ends it as a failed login
    return;
  }
  s.sasl = null;
  s.phase = 'authorization';
  s.decoder.maxLength = s.deps.config.limits.commandLine;
  invalidCommand(s, 'lineTooLong');
}

export function invalidCommand(s: Pop3Session, reply: ReplyKey, verb = 'OTHER'): void {
  s.invalidCount++;
  s.deps.metrics.command(verb, 'err', 0);
  // An unknown verb is logged as OTHER, never as typed: it could be anything, even a password.
  const known = (KNOWN_VERBS as readonly string[]).includes(verb) ? verb : 'OTHER';
  s.log.info({ event: 'command', verb: known, result: 'err', reply, ms: 0 }, 'invalid command');
  if (reply === 'lineTooLong') s.deps.metrics.policyRefusal('line-too-long');
  if (s.invalidCount >= s.deps.config.limits.maxInvalidCommands) {
    s.deps.metrics.policyRefusal('too-many-invalid');
    s.respond(REPLIES.tooManyInvalid);
    s.endAfterReplies('too-many-invalid');
    return;
  }
  s.respond(REPLIES[reply]);
}
