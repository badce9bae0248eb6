/**
 * HAProxy PROXY protocol v1 (text) and v2 (binary) headers:
 * https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt
 *
 * parseProxyHeader resumes from the bytes received so far and says `more` until it can decide.
 * It refuses as early as possible: a peer that is not a proxy must not be able to hold the
 * connection by trickling bytes, and anything malformed is a reason to drop the connection
 * (spec section 2.1: "the receiver must not try to guess").
 */

import ipaddr from 'ipaddr.js';

export interface ProxyAddress {
  address: string;
  port: number;
}

export interface ProxyInfo {
  version: 1 | 2;
  command: 'PROXY' | 'LOCAL';
  /** UNKNOWN: no usable addresses (v1 UNKNOWN, v2 LOCAL/UNSPEC/UNIX); use the socket's own. */
  family: 'TCP4' | 'TCP6' | 'UNKNOWN';
  source: ProxyAddress | null;
  destination: ProxyAddress | null;
}

export type ProxyParse =
  | { status: 'more' }
  | { status: 'invalid'; reason: string }
  | { status: 'ok'; info: ProxyInfo; length: number };

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V1_MAX = 107;
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_HEADER = 16;
const CR = 0x0d;
const LF = 0x0a;

const MORE: ProxyParse = { status: 'more' };

function invalid(reason: string): ProxyParse {
  return { status: 'invalid', reason };
}

/** True if buf starts with as much of `prefix` as it holds. */
function matchesPrefix(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.compare(prefix, 0, n, 0, n) === 0;
}

export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (buf.length === 0) return MORE;
  if (matchesPrefix(buf, V1_PREFIX)) return buf.length < V1_PREFIX.length ? MORE : parseV1(buf);
  if (matchesPrefix(buf, V2_SIGNATURE)) return buf.length < V2_SIGNATURE.length ? MORE : parseV2(buf);
  return invalid('no PROXY protocol signature');
}

// ---------------------------------------------------------------- v1

function parseV1(buf: Buffer): ProxyParse {
  const limit = Math.min(buf.length, V1_MAX);
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const b = buf[i]!;
    if (b === LF) {
      if (buf[i - 1] !== CR) return invalid('v1 header ends with a bare LF');
      return parseV1Line(buf.toString('latin1', 0, i - 1), i + 1);
    }
    if (b === CR) {
      if (i + 1 < buf.length && buf[i + 1] !== LF) return invalid('v1 header has a bare CR');
    } else if (b < 0x20 || b > 0x7e) {
      return invalid('v1 header has a non-printable byte');
    }
  }
  return buf.length >= V1_MAX ? invalid('v1 header longer than 107 bytes') : MORE;
}

function parseV1Line(line: string, length: number): ProxyParse {
  const parts = line.split(' ');
  const family = parts[1];
  if (family === 'UNKNOWN') {
    // Section 2.1: whatever follows UNKNOWN up to the CRLF is ignored.
    return ok({ version: 1, command: 'PROXY', family: 'UNKNOWN', source: null, destination: null }, length);
  }
  if (family !== 'TCP4' && family !== 'TCP6') return invalid('v1 protocol is not TCP4, TCP6 or UNKNOWN');
  if (parts.length !== 6) return invalid('v1 header does not have exactly 6 fields');
  const [, , srcText, dstText, srcPortText, dstPortText] = parts as [string, string, string, string, string, string];
  const valid = family === 'TCP4' ? isStrictIPv4 : isStrictIPv6;
  if (!valid(srcText) || !valid(dstText)) return invalid(`v1 address is not a valid ${family} address`);
  const srcPort = parsePort(srcPortText);
  const dstPort = parsePort(dstPortText);
  if (srcPort === null || dstPort === null) return invalid('v1 port is not a decimal in 0..65535');
  return ok(
    {
      version: 1,
      command: 'PROXY',
      family,
      source: { address: canonical(srcText), port: srcPort },
      destination: { address: canonical(dstText), port: dstPort },
    },
    length,
  );
}

function parsePort(text: string): number | null {
  if (!/^(?:0|[1-9][0-9]{0,4})$/.test(text)) return null;
  const port = Number(text);
  return port <= 65535 ? port : null;
}

/** Dotted quad without leading zeros (a leading zero reads as octal to some parsers). */
function isStrictIPv4(text: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(text);
}

/** IPv6 text without a zone id, with any embedded IPv4 part strict too. */
function isStrictIPv6(text: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !ipaddr.IPv6.isValid(text)) return false;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  return !tail.includes('.') || isStrictIPv4(tail);
}

function canonical(text: string): string {
  return format(ipaddr.parse(text));
}

/** Compact lower-case text (RFC 5952), with an IPv4-mapped address as ::ffff:a.b.c.d for readable logs. */
function format(address: ipaddr.IPv4 | ipaddr.IPv6): string {
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    return `::ffff:${(address as ipaddr.IPv6).toIPv4Address().toString()}`;
  }
  return address.toString();
}

function ok(info: ProxyInfo, length: number): ProxyParse {
  return { status: 'ok', info, length };
}

// ---------------------------------------------------------------- v2

const V2_VERSION = 0x2;
const V2_LOCAL = 0x0;
const V2_PROXY = 0x1;
const AF_UNSPEC = 0x0;
const AF_INET = 0x1;
const AF_INET6 = 0x2;
const AF_UNIX = 0x3;
const TRANSPORT_STREAM = 0x1;
const TRANSPORT_DGRAM = 0x2;
/** Section 2.2 lists these; "other values are unspecified and must not be emitted". */
const V2_FAMILIES: ReadonlySet<number> = new Set([0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32]);
const TCP4_BLOCK = 12;
const TCP6_BLOCK = 36;

function parseV2(buf: Buffer): ProxyParse {
  if (buf.length < 13) return MORE;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== V2_VERSION) return invalid('v2 version is not 2');
  const cmd = verCmd & 0x0f;
  if (cmd !== V2_LOCAL && cmd !== V2_PROXY) return invalid('v2 command is neither LOCAL nor PROXY');
  if (buf.length < 14) return MORE;
  const fam = buf[13]!;
  const af = fam >> 4;
  const transport = fam & 0x0f;
  if (!V2_FAMILIES.has(fam)) return invalid('v2 address family or transport is unknown');
  if (buf.length < V2_HEADER) return MORE;
  const blockLength = buf.readUInt16BE(14);
  const length = V2_HEADER + blockLength;
  if (buf.length < length) return MORE;

  // Section 2.2: with LOCAL the receiver uses the real endpoints and ignores the address block.
  if (cmd === V2_LOCAL) return ok(unknown('LOCAL'), length);
  if (transport === TRANSPORT_DGRAM) return invalid('v2 header describes a datagram (UDP) connection');
  // UNSPEC or a UNIX socket on the proxy's side: nothing we can use as a client address.
  if (af === AF_UNSPEC || af === AF_UNIX) return ok(unknown('PROXY'), length);

  const block = buf.subarray(V2_HEADER, length);
  if (af === AF_INET) {
    if (blockLength < TCP4_BLOCK) return invalid('v2 TCP4 address block is too short');
    return ok(addresses('TCP4', block, 4), length);
  }
  if (blockLength < TCP6_BLOCK) return invalid('v2 TCP6 address block is too short');
  return ok(addresses('TCP6', block, 16), length);
}

function unknown(command: 'PROXY' | 'LOCAL'): ProxyInfo {
  return { version: 2, command, family: 'UNKNOWN', source: null, destination: null };
}

/** src addr, dst addr, src port, dst port; any TLVs after them are skipped. */
function addresses(family: 'TCP4' | 'TCP6', block: Buffer, size: 4 | 16): ProxyInfo {
  const src = format(ipaddr.fromByteArray([...block.subarray(0, size)]));
  const dst = format(ipaddr.fromByteArray([...block.subarray(size, 2 * size)]));
  return {
    version: 2,
    command: 'PROXY',
    family,
    source: { address: src, port: block.readUInt16BE(2 * size) },
    destination: { address: dst, port: block.readUInt16BE(2 * size + 2) },
  };
}

// ---------------------------------------------------------------- builders

type Parsed = ipaddr.IPv4 | ipaddr.IPv6;

/** Parse a socket address; IPv4-mapped IPv6 (::ffff:1.2.3.4) becomes IPv4, a zone id is dropped. */
function parseAddress(text: string): Parsed {
  if (!ipaddr.isValid(text)) throw new RangeError(`not an IP address: ${JSON.stringify(text)}`);
  const parsed = ipaddr.process(text);
  return ipaddr.fromByteArray(parsed.toByteArray());
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`not a port: ${port}`);
  return port;
}

/** Both addresses in one family: IPv4 when both are, else IPv6 with IPv4 mapped. */
function pair(src: ProxyAddress, dst: ProxyAddress): { family: 'TCP4' | 'TCP6'; src: Parsed; dst: Parsed } {
  checkPort(src.port);
  checkPort(dst.port);
  let s = parseAddress(src.address);
  let d = parseAddress(dst.address);
  if (s.kind() === 'ipv4' && d.kind() === 'ipv4') return { family: 'TCP4', src: s, dst: d };
  if (s.kind() === 'ipv4') s = (s as ipaddr.IPv4).toIPv4MappedAddress();
  if (d.kind() === 'ipv4') d = (d as ipaddr.IPv4).toIPv4MappedAddress();
  return { family: 'TCP6', src: s, dst: d };
}

export function buildProxyV1(src: ProxyAddress, dst: ProxyAddress): Buffer {
  const p = pair(src, dst);
  return Buffer.from(`PROXY ${p.family} ${format(p.src)} ${format(p.dst)} ${src.port} ${dst.port}\r\n`, 'latin1');
}

export function buildProxyV2(src: ProxyAddress, dst: ProxyAddress): Buffer {
  const p = pair(src, dst);
  const size = p.family === 'TCP4' ? 4 : 16;
  const blockLength = p.family === 'TCP4' ? TCP4_BLOCK : TCP6_BLOCK;
  const out = Buffer.alloc(V2_HEADER + blockLength);
  V2_SIGNATURE.copy(out, 0);
  out[12] = (V2_VERSION << 4) | V2_PROXY;
  out[13] = ((p.family === 'TCP4' ? AF_INET : AF_INET6) << 4) | TRANSPORT_STREAM;
  out.writeUInt16BE(blockLength, 14);
  out.set(p.src.toByteArray(), V2_HEADER);
  out.set(p.dst.toByteArray(), V2_HEADER + size);
  out.writeUInt16BE(src.port, V2_HEADER + 2 * size);
  out.writeUInt16BE(dst.port, V2_HEADER + 2 * size + 2);
  return out;
}
