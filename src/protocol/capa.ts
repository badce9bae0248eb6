/**
 * CAPA (RFC 2449 section 5): reading the backend's list and building the one the client sees.
 *
 * The backend's list is never relayed as is. Whatever depends on the gateway (STLS, USER, SASL,
 * IMPLEMENTATION, PIPELINING) comes from the view that policy computed, so what we advertise is
 * what we enforce; only capabilities known to be safe to pass through are taken from the backend.
 */

import { sanitizeLine } from './response.ts';
import { dotStuff } from './multiline.ts';

export interface Capabilities {
  /** The CAPA body lines as received (un-stuffed). */
  readonly lines: readonly string[];
  /** Case-insensitive test of a capability keyword (the first word of a line). */
  has(keyword: string): boolean;
  /** Upper-cased SASL mechanisms from the "SASL" line. */
  readonly sasl: readonly string[];
  /** Text after "IMPLEMENTATION ", or null. */
  readonly implementation: string | null;
  readonly pipelining: boolean;
}

function keywordOf(line: string): string {
  const space = line.indexOf(' ');
  return (space < 0 ? line : line.slice(0, space)).toUpperCase();
}

function argumentsOf(line: string): string {
  const space = line.indexOf(' ');
  return space < 0 ? '' : line.slice(space + 1);
}

export function parseCapa(lines: readonly string[]): Capabilities {
  const byKeyword = new Map<string, string>();
  for (const line of lines) {
    const keyword = keywordOf(line.trim());
    if (keyword !== '' && !byKeyword.has(keyword)) byKeyword.set(keyword, line.trim());
  }
  const saslLine = byKeyword.get('SASL');
  const sasl = saslLine === undefined
    ? []
    : argumentsOf(saslLine).split(' ').filter((m) => m !== '').map((m) => m.toUpperCase());
  const implementationLine = byKeyword.get('IMPLEMENTATION');
  const implementation = implementationLine === undefined ? null : argumentsOf(implementationLine);
  return {
    lines: [...lines],
    has: (keyword: string) => byKeyword.has(keyword.toUpperCase()),
    sasl,
    implementation,
    pipelining: byKeyword.has('PIPELINING'),
  };
}

export interface CapaView {
  /** null: backend unknown or without CAPA, so the list is synthesized. */
  backend: Capabilities | null;
  /** Advertise STLS. */
  stls: boolean;
  /** Advertise USER. */
  user: boolean;
  /** SASL mechanisms to advertise, already filtered by policy; empty means no SASL line. */
  sasl: readonly string[];
  /** Capabilities tied to a verb outside this set are dropped (TOP, UIDL, USER, STLS, SASL<-AUTH). */
  allowedVerbs: ReadonlySet<string>;
  /** null: no IMPLEMENTATION line; otherwise this text. */
  implementation: string | null;
  phase: 'authorization' | 'transaction';
}

/**
 * Backend capabilities passed through unchanged (with their arguments), each with the verb it
 * needs, if any. Anything not listed here (X-*, LANG, unknown extensions) is dropped: we cannot
 * vouch for a command the gateway does not understand.
 * EXPIRE and LOGIN-DELAY may differ by phase (RFC 2449 sections 6.5, 6.7): the backend's values
 * for the current phase are relayed as they are.
 */
const PASS_THROUGH: ReadonlyMap<string, string | null> = new Map([
  ['TOP', 'TOP'],
  ['UIDL', 'UIDL'],
  ['RESP-CODES', null],
  ['AUTH-RESP-CODE', null],
  ['EXPIRE', null],
  ['LOGIN-DELAY', null],
  ['UTF8', 'UTF8'], // RFC 6856: advertises the UTF8 command
]);

/** RFC 4422 section 3.1 mechanism names; anything else would corrupt the SASL line. */
const SASL_MECHANISM = /^[A-Za-z0-9_-]{1,20}$/;

const HEADER = '+OK Capability list follows\r\n';

export function buildCapaReply(view: CapaView): string {
  const allowed = (verb: string) => view.allowedVerbs.has(verb);
  const lines: string[] = [];
  if (view.backend === null) {
    // RFC 1939 lists TOP and UIDL as optional, and we cannot ask the backend: advertise them
    // when policy allows the verbs, and let a backend that lacks them answer -ERR.
    // Never RESP-CODES or AUTH-RESP-CODE (RFC 2449 section 6.4, RFC 3206): the backend's -ERR
    // lines are relayed as they are, so the gateway cannot promise what their text holds.
    if (allowed('TOP')) lines.push('TOP');
    if (allowed('UIDL')) lines.push('UIDL');
  } else {
    const seen = new Set<string>();
    for (const raw of view.backend.lines) {
      const line = sanitizeLine(raw).trim();
      const keyword = keywordOf(line);
      if (seen.has(keyword) || !PASS_THROUGH.has(keyword)) continue;
      const verb = PASS_THROUGH.get(keyword);
      if (verb !== null && verb !== undefined && !allowed(verb)) continue;
      seen.add(keyword);
      lines.push(keyword === line.toUpperCase() ? keyword : `${keyword} ${argumentsOf(line)}`);
    }
  }
  // The gateway queues pipelined commands itself, whatever the backend does.
  lines.push('PIPELINING');
  // RFC 2595 section 4: STLS is only valid in the AUTHORIZATION state.
  if (view.stls && view.phase === 'authorization' && allowed('STLS')) lines.push('STLS');
  // USER without PASS would invite a login that policy then refuses.
  if (view.user && allowed('USER') && allowed('PASS')) lines.push('USER');
  const mechanisms = view.sasl.filter((m) => SASL_MECHANISM.test(m)).map((m) => m.toUpperCase());
  if (mechanisms.length > 0 && allowed('AUTH')) lines.push(`SASL ${mechanisms.join(' ')}`);
  if (view.implementation !== null) {
    const text = sanitizeLine(view.implementation).trim();
    if (text !== '') lines.push(`IMPLEMENTATION ${text}`);
  }
  return `${HEADER}${lines.map((line) => `${dotStuff(line)}\r\n`).join('')}.\r\n`;
}
