/**
 * CIDR sets and client keys. IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack
 * socket reports for an IPv4 peer) is treated as the IPv4 address everywhere, so a
 * rule written for 10.0.0.0/8 matches either spelling.
 */
import ipaddr from 'ipaddr.js';
import { memoize } from '../util/memo.ts';

type Addr = ipaddr.IPv4 | ipaddr.IPv6;
type Cidr = readonly [Addr, number];

export class NetworkError extends Error {
  readonly code = 'BAD_NETWORK';
}

/**
 * Parses an address, folding IPv4-mapped IPv6 to IPv4; null when it is not an IP. Remembered:
 * a session's address is looked at on accept, for every counter key and every network check.
 * The result is shared, never to be changed.
 */
export const parseIp: (ip: string) => Addr | null = memoize((ip: string) => (ipaddr.isValid(ip) ? ipaddr.process(ip) : null));

/** "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128). Throws NetworkError. */
export function parseCidr(text: string): Cidr {
  const s = text.trim();
  let addr: Addr;
  let bits: number;
  if (s.includes('/')) {
    if (!ipaddr.isValidCIDR(s)) throw new NetworkError(`not a CIDR: ${JSON.stringify(text)}`);
    [addr, bits] = ipaddr.parseCIDR(s);
  } else {
    if (!ipaddr.isValid(s)) throw new NetworkError(`not an IP address: ${JSON.stringify(text)}`);
    addr = ipaddr.parse(s);
    bits = addr.kind() === 'ipv4' ? 32 : 128;
  }
  // ::ffff:10.0.0.0/104 describes IPv4 space; store it as 10.0.0.0/8 so IPv4 peers match.
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    return [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96];
  }
  return [addr, bits];
}

function inCidr(addr: Addr, [net, bits]: Cidr): boolean {
  return addr.kind() === net.kind() && addr.match(net, bits);
}

/**
 * A set of networks. Entries starting with "!" exclude: an address is contained when it
 * is in some positive entry (or there are none but there are exclusions) and in no
 * excluded entry. So ["!10.0.0.0/8"] means "anything outside 10/8"; [] contains nothing.
 */
export class NetworkSet {
  readonly #include: Cidr[] = [];
  readonly #exclude: Cidr[] = [];

  constructor(cidrs: readonly string[]) {
    for (const entry of cidrs) {
      const t = entry.trim();
      if (t.startsWith('!')) this.#exclude.push(parseCidr(t.slice(1)));
      else this.#include.push(parseCidr(t));
    }
  }

  get empty(): boolean {
    return this.#include.length === 0 && this.#exclude.length === 0;
  }

  contains(ip: string): boolean {
    if (this.empty) return false;
    const addr = parseIp(ip);
    if (addr === null) return false;
    if (this.#exclude.some((c) => inCidr(addr, c))) return false;
    return this.#include.length === 0 || this.#include.some((c) => inCidr(addr, c));
  }
}

/**
 * The key counters use for a client: IPv4 as is; IPv6 masked to `ipv6Prefix` bits,
 * because one subscriber usually holds a whole /64 and could otherwise rotate addresses
 * to dodge per-IP limits. Something that is not an IP (a unix socket path) is returned as is.
 */
export function clientKey(ip: string, ipv6Prefix: number): string {
  let keyOf = clientKeys.get(ipv6Prefix);
  if (keyOf === undefined) {
    keyOf = memoize((a: string) => computeClientKey(a, ipv6Prefix));
    clientKeys.set(ipv6Prefix, keyOf);
  }
  return keyOf(ip);
}

/** clientKey remembered per prefix length (one or two in any configuration). */
const clientKeys = new Map<number, (ip: string) => string>();

function computeClientKey(ip: string, ipv6Prefix: number): string {
  const addr = parseIp(ip);
  if (addr === null) return ip;
  if (addr.kind() === 'ipv4') return addr.toString();
  const bits = Math.max(0, Math.min(128, Math.trunc(ipv6Prefix)));
  const net = ipaddr.IPv6.networkAddressFromCIDR(`${stripZone(addr as ipaddr.IPv6)}/${bits}`);
  return `${net.toString()}/${bits}`;
}

function stripZone(a: ipaddr.IPv6): string {
  return new ipaddr.IPv6(a.parts).toString();
}

/** True for 127.0.0.0/8, ::1 and the name `localhost`. */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const addr = parseIp(host);
  return addr !== null && addr.range() === 'loopback';
}

/** True for 0.0.0.0 and :: (listening on every interface). */
export function isUnspecifiedHost(host: string): boolean {
  const addr = parseIp(host);
  return addr !== null && addr.range() === 'unspecified';
}
