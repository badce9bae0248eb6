/**
 * What a policy decides. Policy never writes replies: it names a ReplyKey and the
 * session turns the verdict into a line (Haraka-style hooks returning verdicts).
 */
import type { ReplyKey } from '../protocol/replies.ts';

export type Verdict =
  | { readonly kind: 'allow' }
  | { readonly kind: 'deny'; readonly reason: string; readonly reply: ReplyKey; readonly close?: boolean }
  /** Report-only rules: the session goes on, the audit records "would refuse" with the reason. */
  | { readonly kind: 'report'; readonly reason: string };

export type DenyVerdict = Extract<Verdict, { kind: 'deny' }>;

export const allow: Verdict = Object.freeze({ kind: 'allow' });

/** `reason` is stable kebab-case (logs, metrics labels); `close` ends the session after the reply. */
export function deny(reason: string, reply: ReplyKey, close?: boolean): DenyVerdict {
  return Object.freeze(close ? { kind: 'deny', reason, reply, close: true } : { kind: 'deny', reason, reply });
}

export function report(reason: string): Verdict {
  return Object.freeze({ kind: 'report', reason });
}

