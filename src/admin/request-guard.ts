/**
 * Which requests the admin endpoint answers at all, before any token check: a browser on the
 * operator's machine must not be turned against it.
 * - DNS rebinding: a page on attacker.example re-points its name at 127.0.0.1 and reads
 *   /sessions as same-origin. The browser still sends `Host: attacker.example`, so the Host
 *   must name the admin's own address (or one of `admin.allowedHosts`).
 * - Cross-site requests: a browser names the page that made them in `Origin`; only the
 *   admin's own origin is accepted.
 * - Cross-site forms: a plain HTML form can POST, but can neither send
 *   `Content-Type: application/json` nor a custom header; a kick needs one of the two.
 * Pure: headers in, a verdict out.
 */
import { parseIp } from '../util/cidr.ts';

export type GuardVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly status: number; readonly error: string };

export interface GuardHeaders {
  readonly host?: string | undefined;
  readonly origin?: string | undefined;
  readonly 'content-type'?: string | undefined;
  readonly 'x-pop3gw-admin'?: string | string[] | undefined;
}

/** The header a script may send instead of a JSON content type on POST. */
export const ADMIN_HEADER = 'X-Pop3gw-Admin';

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];
const OK: GuardVerdict = { ok: true };

export class RequestGuard {
  readonly #names: ReadonlySet<string>;
  /** Bound to 0.0.0.0 or ::: reached by whatever address the machine has. */
  readonly #wildcard: boolean;

  /** `bindHost` is admin.host; `allowed` is admin.allowedHosts (names or addresses, no port). */
  constructor(bindHost: string, allowed: readonly string[]) {
    const bind = hostOnly(bindHost);
    const ip = parseIp(bind);
    const range = ip?.range();
    this.#wildcard = range === 'unspecified';
    const names = new Set(allowed.map(normalise));
    if (!this.#wildcard) names.add(normalise(bind));
    if (this.#wildcard || range === 'loopback' || bind.toLowerCase() === 'localhost') {
      for (const n of LOOPBACK_NAMES) names.add(n);
    }
    this.#names = names;
  }

  check(method: string, h: GuardHeaders): GuardVerdict {
    // A browser always sends Host; a request without one (HTTP/1.0 health checkers) was not made by a page.
    if (h.host !== undefined && !this.hostAccepted(h.host)) {
      return { ok: false, status: 421, error: 'misdirected request: Host is not this admin endpoint' };
    }
    if (h.origin !== undefined && !sameOrigin(h.origin, h.host)) {
      return { ok: false, status: 403, error: 'forbidden: cross-origin request' };
    }
    if (method === 'POST' && !isJson(h['content-type']) && h['x-pop3gw-admin'] === undefined) {
      return { ok: false, status: 415, error: `POST needs Content-Type: application/json or an ${ADMIN_HEADER} header` };
    }
    return OK;
  }

  /** The port is not compared: DNS rebinding changes the name, never the port. */
  hostAccepted(header: string): boolean {
    const host = splitHostPort(header);
    if (host === null) return false;
    const name = normalise(host);
    if (this.#names.has(name)) return true;
    // On a wildcard bind any address literal of the machine may be used; an address cannot be rebound.
    return this.#wildcard && parseIp(name) !== null;
  }
}

/** `Origin` must be the origin of the page the admin itself served: same host and port as `Host`. */
function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  let url: URL;
  try {
    url = new URL(origin); // "null" (sandboxed frames, file:) does not parse: refused
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  return url.host.toLowerCase() === host.toLowerCase() || url.host.toLowerCase() === defaultPortless(host, url.protocol);
}

// `Host: a:80` and `Origin: http://a` are the same origin (URL drops a default port).
function defaultPortless(host: string, protocol: string): string {
  const lower = host.toLowerCase();
  const suffix = protocol === 'http:' ? ':80' : ':443';
  return lower.endsWith(suffix) ? lower.slice(0, -suffix.length) : lower;
}

function isJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  return (contentType.split(';')[0] ?? '').trim().toLowerCase() === 'application/json';
}

/** `name`, `name:port`, `[v6]`, `[v6]:port` → the host part; null when malformed. */
export function splitHostPort(value: string): string | null {
  const v = value.trim();
  const m = /^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$/.exec(v) ?? /^([^:[\]\s]+)(?::(\d{1,5}))?$/.exec(v);
  return m === null ? null : (m[1] as string);
}

function hostOnly(v: string): string {
  return v.startsWith('[') && v.endsWith(']') ? v.slice(1, -1) : v;
}

/** Lower case, brackets and a trailing root dot dropped, IPv6 in its compact form. */
function normalise(name: string): string {
  const bare = hostOnly(name.trim()).toLowerCase().replace(/\.$/, '');
  const ip = parseIp(bare);
  return ip === null ? bare : ip.toString();
}
