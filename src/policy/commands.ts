/**
 * The command allowlist (policy.commands.allow, overridden per listener) and the
 * TLS-before-passwords verdict. A refused verb gets -ERR from the gateway and the
 * session goes on; it never reaches the backend.
 */
import type { ListenerConfig, ListenerTls } from '../config/schema.ts';
import { plaintextAuthAllowed } from './tls-gate.ts';
import { allow, deny, type Verdict } from './verdict.ts';

/** Verbs that carry or lead to credentials (RFC 1939 USER/PASS/APOP, RFC 5034 AUTH). */
export const AUTH_VERBS: ReadonlySet<string> = new Set(['USER', 'PASS', 'APOP', 'AUTH']);

export class CommandPolicy {
  readonly #global: ReadonlySet<string>;
  readonly #byListener = new Map<string, ReadonlySet<string>>();

  constructor(globalAllow: readonly string[], listeners: readonly ListenerConfig[]) {
    this.#global = upperSet(globalAllow);
    for (const l of listeners) this.#byListener.set(l.name, l.allow === null ? this.#global : upperSet(l.allow));
  }

  /** Throws on an unknown listener name: that is a wiring bug, not something to guess about. */
  allowedVerbs(listenerName: string): ReadonlySet<string> {
    const set = this.#byListener.get(listenerName);
    if (set === undefined) throw new Error(`CommandPolicy: unknown listener ${JSON.stringify(listenerName)}`);
    return set;
  }

  check(listenerName: string, verb: string): Verdict {
    const allowed = this.allowedVerbs(listenerName);
    return allowed.has(verb) || allowed.has(verb.toUpperCase()) ? allow : deny('not-in-allowlist', 'notAllowed');
  }
}

/** USER/PASS/APOP/AUTH before TLS where TLS is required: -ERR telling the client to use STLS. */
export function authVerdict(f: {
  verb: string;
  listenerTls: ListenerTls;
  requireTls: boolean;
  tlsActive: boolean;
}): Verdict {
  if (!AUTH_VERBS.has(f.verb.toUpperCase())) return allow;
  return plaintextAuthAllowed(f) ? allow : deny('tls-required', 'stlsFirst');
}

function upperSet(verbs: readonly string[]): ReadonlySet<string> {
  return new Set(verbs.map((v) => v.trim().toUpperCase()));
}
