/**
 * Rules after login (policy.rules): the first rule whose user pattern and/or network
 * matches narrows what the session may do. Report-mode rules only say what they would
 * have refused; the session lets the command through and audits it.
 */
import type { RuleConfig } from '../config/schema.ts';
import { NetworkSet } from './networks.ts';
import { compileUserPattern } from './user-pattern.ts';
import { allow, deny, report, type Verdict } from './verdict.ts';

/**
 * A retrieval's share of the session's caps, taken when the command is accepted (in client
 * order, before it is queued to the backend), so pipelined commands cannot all pass a cap that
 * none of their replies has reached yet.
 */
export interface Reservation {
  /**
   * The reply came back: `octets` relayed after a +OK replace the size reserved; null (a -ERR)
   * gives the whole reservation back. Only the first call counts.
   */
  settle(octets: number | null): void;
}

export interface Admission {
  readonly verdict: Verdict;
  /** Held by an admitted RETR/TOP (also in report mode) until its reply settles it; else null. */
  readonly reservation: Reservation | null;
}

export interface SessionRules {
  /** Index of the matched rule in policy.rules, for logs; null when none matched. */
  readonly matched: number | null;
  readonly mode: 'enforce' | 'report';
  /** True when admitting `verb` needs the message's size (LIST n) first: a byte cap on a retrieval. */
  needsSize(verb: string): boolean;
  /**
   * Verdict for a command after login, and for RETR/TOP a reservation of one message and
   * `size` octets (RETR: the message size; TOP: the message size as an upper bound; null when
   * unknown). Refused once the reservation would pass maxMessages or maxBytes.
   */
  admit(verb: string, size?: number | null): Admission;
  /** The verbs to list in CAPA after login: `base` narrowed by the rule (unchanged in report mode). */
  allowedVerbs(base: ReadonlySet<string>): ReadonlySet<string>;
}

/** Ending a session is never narrowed: a client that can't QUIT holds its slot until the idle timeout. */
const ALWAYS = 'QUIT';
const RETRIEVING: ReadonlySet<string> = new Set(['RETR', 'TOP']);

interface CompiledRule {
  readonly index: number;
  readonly user: ((user: string) => boolean) | null;
  readonly network: NetworkSet | null;
  readonly deny: ReadonlySet<string>;
  readonly allow: ReadonlySet<string> | null;
  readonly maxMessages: number | null;
  readonly maxBytes: number | null;
  readonly mode: 'enforce' | 'report';
}

export class RuleSet {
  readonly #rules: readonly CompiledRule[];

  /** Throws on a bad user pattern or network (config validation should have caught it). */
  constructor(rules: readonly RuleConfig[]) {
    this.#rules = rules.map((r, index) => ({
      index,
      user: r.match.user === null ? null : compileUserPattern(r.match.user),
      network: r.match.network === null ? null : new NetworkSet([r.match.network]),
      deny: new Set(r.deny.map((v) => v.toUpperCase())),
      allow: r.allow === null ? null : new Set(r.allow.map((v) => v.toUpperCase())),
      maxMessages: r.maxMessages,
      maxBytes: r.maxBytes,
      mode: r.mode,
    }));
  }

  get size(): number {
    return this.#rules.length;
  }

  forSession(user: string, ip: string): SessionRules {
    const rule = this.#rules.find(
      (r) => (r.user === null || r.user(user)) && (r.network === null || r.network.contains(ip)),
    );
    return rule === undefined ? NO_RULE : new MatchedRules(rule);
  }
}

const ALLOWED: Admission = Object.freeze({ verdict: allow, reservation: null });

const NO_RULE: SessionRules = Object.freeze({
  matched: null,
  mode: 'enforce' as const,
  needsSize: () => false,
  admit: () => ALLOWED,
  allowedVerbs: (base: ReadonlySet<string>) => base,
});

class MatchedRules implements SessionRules {
  readonly #rule: CompiledRule;
  /** Retrievals reserved or done, and their octets (reserved sizes until settled). */
  #messages = 0;
  #bytes = 0;

  constructor(rule: CompiledRule) {
    this.#rule = rule;
  }

  get matched(): number {
    return this.#rule.index;
  }

  get mode(): 'enforce' | 'report' {
    return this.#rule.mode;
  }

  needsSize(verb: string): boolean {
    const upper = verb.toUpperCase();
    if (this.#rule.maxBytes === null || !RETRIEVING.has(upper)) return false;
    // A verb the rule refuses anyway needs no look-up first.
    return this.#rule.mode === 'report' || this.#refusal(upper, null) !== 'rule-deny';
  }

  admit(verb: string, size: number | null = null): Admission {
    const upper = verb.toUpperCase();
    const reason = this.#refusal(upper, size);
    if (reason !== null && this.#rule.mode === 'enforce') {
      return { verdict: deny(reason, reason === 'rule-deny' ? 'notAllowed' : 'messageLimit'), reservation: null };
    }
    const verdict = reason === null ? allow : report(reason);
    // Report mode reserves too, so that later reports stay true.
    return { verdict, reservation: RETRIEVING.has(upper) ? this.#reserve(size) : null };
  }

  #refusal(verb: string, size: number | null): string | null {
    const r = this.#rule;
    if (verb === ALWAYS) return null;
    if (r.deny.has(verb) || (r.allow !== null && !r.allow.has(verb))) return 'rule-deny';
    if (!RETRIEVING.has(verb)) return null;
    if (r.maxMessages !== null && this.#messages + 1 > r.maxMessages) return 'max-messages';
    if (r.maxBytes !== null) {
      if (this.#bytes >= r.maxBytes) return 'max-bytes';
      if (size !== null && this.#bytes + size > r.maxBytes) return 'max-bytes';
    }
    return null;
  }

  #reserve(size: number | null): Reservation {
    const reserved = size === null ? 0 : Math.max(0, size);
    this.#messages += 1;
    this.#bytes += reserved;
    let settled = false;
    return {
      settle: (octets) => {
        if (settled) return;
        settled = true;
        if (octets === null) {
          this.#messages -= 1;
          this.#bytes -= reserved;
        } else {
          this.#bytes += Math.max(0, octets) - reserved;
        }
      },
    };
  }

  allowedVerbs(base: ReadonlySet<string>): ReadonlySet<string> {
    const r = this.#rule;
    if (r.mode === 'report') return base;
    return new Set([...base].filter((v) => v === ALWAYS || (!r.deny.has(v) && (r.allow === null || r.allow.has(v)))));
  }
}
