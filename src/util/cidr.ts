/**
 * CIDR ranges for config checks and policy (trustedNetworks, rules, trustedProxies).
 * Clients on a dual-stack socket show up as IPv4-mapped IPv6 ("::ffff:1.2.3.4"); they are
 * compared as the IPv4 address they are, so "1.2.3.0/24" matches them.
 */
import ipaddr from 'ipaddr.js';

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

export interface Cidr {
  readonly address: IpAddress;
  readonly bits: number;
}

/**
 * Parses an address in its canonical textual form only: IPv4 as four decimal parts (ipaddr.js
 * would also take "0x7f.1" or "2130706433", which nobody means in a config file), IPv6 as RFC 4291.
 * Mapped IPv6 addresses come back as IPv4. Not remembered here: it also reads config values and
 * the admin endpoint's Host header (any text a caller sends); the per-client uses remember their
 * own answers (signals.ts networkOf/hostOf, networks.ts).
 */
export function parseIp(s: string): IpAddress | null {
  if (ipaddr.IPv4.isValidFourPartDecimal(s)) return ipaddr.IPv4.parse(s);
  if (!ipaddr.IPv6.isValid(s) || !s.includes(':')) return null;
  const v6 = ipaddr.IPv6.parse(s);
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address() : v6;
}

/** "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128). Null when invalid. */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf('/');
  const address = parseIp(slash === -1 ? s : s.slice(0, slash));
  if (address === null) return null;
  const max = address.kind() === 'ipv4' ? 32 : 128;
  if (slash === -1) return { address, bits: max };
  const bitsText = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText)) return null;
  let bits = Number(bitsText);
  // An IPv4-mapped range like ::ffff:10.0.0.0/104 was turned into IPv4 by parseIp: shift its prefix.
  const writtenAsV6 = s.slice(0, slash).includes(':');
  if (writtenAsV6 && address.kind() === 'ipv4') {
    if (bits < 96) return null;
    bits -= 96;
  }
  return bits <= max ? { address, bits } : null;
}

export function isValidCidr(s: string): boolean {
  return parseCidr(s) !== null;
}

/** True when `ip` lies inside `cidr`. An unparsable ip or cidr never matches. */
export function cidrContains(cidr: string | Cidr, ip: string | IpAddress): boolean {
  const range = typeof cidr === 'string' ? parseCidr(cidr) : cidr;
  const addr = typeof ip === 'string' ? parseIp(ip) : unmap(ip);
  if (range === null || addr === null) return false;
  if (addr.kind() !== range.address.kind()) return false;
  return addr.match(range.address, range.bits);
}

function unmap(addr: IpAddress): IpAddress {
  return addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()
    ? (addr as ipaddr.IPv6).toIPv4Address()
    : addr;
}
