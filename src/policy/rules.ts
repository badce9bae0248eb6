/**
 * Rules after login (policy.rules): the first rule whose user pattern and/or network
 * matches narrows what the session may do. Report-mode rules only say what they would
 * have refused; the session lets the command through and audits it.
 */
import type { RuleConfig } from '../config/schema.ts';
import { NetworkSet } from './networks.ts';
import { compileUserPattern } from './user-pattern.ts';
import { allow, deny, report, type Verdict } from './verdict.ts';

export interface SessionRules {
  /** Index of the matched rule in policy.rules, for logs; null when none matched. */
  readonly matched: number | null;
  readonly mode: 'enforce' | 'report';
  /**
   * Verdict for a command after login. `sizeHint` is the octets the command will relay
   * when the session knows them (RETR: the message size from LIST), else null.
   */
  check(verb: string, sizeHint?: number | null): Verdict;
  /** Call after a RETR/TOP body was relayed (also in report mode, so later reports stay true). */
  recordRetrieved(octets: number): void;
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

const NO_RULE: SessionRules = Object.freeze({
  matched: null,
  mode: 'enforce' as const,
  check: () => allow,
  recordRetrieved: () => undefined,
  allowedVerbs: (base: ReadonlySet<string>) => base,
});

class MatchedRules implements SessionRules {
  readonly #rule: CompiledRule;
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

  check(verb: string, sizeHint: number | null = null): Verdict {
    const reason = this.#refusal(verb.toUpperCase(), sizeHint);
    if (reason === null) return allow;
    if (this.#rule.mode === 'report') return report(reason);
    return deny(reason, reason === 'rule-deny' ? 'notAllowed' : 'messageLimit');
  }

  #refusal(verb: string, sizeHint: number | null): string | null {
    const r = this.#rule;
    if (verb === ALWAYS) return null;
    if (r.deny.has(verb) || (r.allow !== null && !r.allow.has(verb))) return 'rule-deny';
    if (!RETRIEVING.has(verb)) return null;
    if (r.maxMessages !== null && this.#messages >= r.maxMessages) return 'max-messages';
    if (r.maxBytes !== null) {
      if (this.#bytes >= r.maxBytes) return 'max-bytes';
      if (sizeHint !== null && this.#bytes + sizeHint > r.maxBytes) return 'max-bytes';
    }
    return null;
  }

  recordRetrieved(octets: number): void {
    this.#messages += 1;
    this.#bytes += Math.max(0, octets);
  }

  allowedVerbs(base: ReadonlySet<string>): ReadonlySet<string> {
    const r = this.#rule;
    if (r.mode === 'report') return base;
    return new Set([...base].filter((v) => v === ALWAYS || (!r.deny.has(v) && (r.allow === null || r.allow.has(v)))));
  }
}
