import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import {
  buildProxyV1,
  buildProxyV2,
  parseProxyHeader,
  type ProxyInfo,
  type ProxyParse,
} from '../../../src/protocol/proxy-header.ts';
import { byteByByte, chunksAt, cutsFor, everySingleSplit, latin1 } from './chunking.ts';

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** A v2 header from its parts; `block` is the address block plus any TLVs. */
function v2(verCmd: number, fam: number, block: Buffer, declared = block.length): Buffer {
  const head = Buffer.alloc(4);
  head[0] = verCmd;
  head[1] = fam;
  head.writeUInt16BE(declared, 2);
  return Buffer.concat([SIG, head, block]);
}

const tcp4Block = Buffer.from([192, 0, 2, 1, 198, 51, 100, 7, 0xd4, 0x31, 0x00, 0x6e]); // ports 54321, 110
const tcp6Block = Buffer.concat([
  Buffer.from(ipaddr.parse('2001:db8::1').toByteArray()),
  Buffer.from(ipaddr.parse('2001:db8:0:0:1::2').toByteArray()),
  Buffer.from([0xff, 0xff, 0x03, 0xe3]), // ports 65535, 995
]);
const tlv = Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32, 0x04, 0x00, 0x00]); // ALPN "h2", NOOP (empty)

/** Feed like a connection would: bytes so far, re-parsed after each chunk until it decides. */
function parseStream(chunks: readonly Buffer[]): ProxyParse {
  let received = Buffer.alloc(0);
  for (const chunk of chunks) {
    received = Buffer.concat([received, chunk]);
    const result = parseProxyHeader(received);
    if (result.status !== 'more') return result;
  }
  return { status: 'more' };
}

const tcp4Info: ProxyInfo = {
  version: 1,
  command: 'PROXY',
  family: 'TCP4',
  source: { address: '192.0.2.1', port: 54321 },
  destination: { address: '198.51.100.7', port: 110 },
};

const VALID: { name: string; input: Buffer; info: ProxyInfo; length: number }[] = [
  { name: 'v1 TCP4', input: latin1('PROXY TCP4 192.0.2.1 198.51.100.7 54321 110\r\n'), info: tcp4Info, length: 45 },
  {
    name: 'v1 TCP6 (normalized to RFC 5952 text)',
    input: latin1('PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::ffff:192.0.2.1 0 65535\r\n'),
    info: {
      version: 1,
      command: 'PROXY',
      family: 'TCP6',
      source: { address: '2001:db8::1', port: 0 },
      destination: { address: '::ffff:192.0.2.1', port: 65535 },
    },
    length: 58,
  },
  {
    name: 'v1 UNKNOWN with addresses',
    input: latin1('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n'),
    info: { version: 1, command: 'PROXY', family: 'UNKNOWN', source: null, destination: null },
    length: 59,
  },
  {
    name: 'v1 UNKNOWN alone',
    input: latin1('PROXY UNKNOWN\r\n'),
    info: { version: 1, command: 'PROXY', family: 'UNKNOWN', source: null, destination: null },
    length: 15,
  },
  {
    name: 'v1 of the maximum length',
    input: latin1('PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n'),
    info: {
      version: 1,
      command: 'PROXY',
      family: 'TCP6',
      source: { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 },
      destination: { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 },
    },
    length: 104,
  },
  {
    name: 'v1 of exactly 107 bytes',
    input: latin1(`PROXY UNKNOWN ${'x'.repeat(91)}\r\n`),
    info: { version: 1, command: 'PROXY', family: 'UNKNOWN', source: null, destination: null },
    length: 107,
  },
  { name: 'v2 TCP4', input: v2(0x21, 0x11, tcp4Block), info: { ...tcp4Info, version: 2 }, length: 28 },
  {
    name: 'v2 TCP6 with TLVs',
    input: v2(0x21, 0x21, Buffer.concat([tcp6Block, tlv])),
    info: {
      version: 2,
      command: 'PROXY',
      family: 'TCP6',
      source: { address: '2001:db8::1', port: 65535 },
      destination: { address: '2001:db8::1:0:0:2', port: 995 },
    },
    length: 16 + 36 + 8,
  },
  {
    name: 'v2 LOCAL (health check)',
    input: v2(0x20, 0x00, Buffer.alloc(0)),
    info: { version: 2, command: 'LOCAL', family: 'UNKNOWN', source: null, destination: null },
    length: 16,
  },
  {
    name: 'v2 LOCAL with an address block to ignore',
    input: v2(0x20, 0x11, tcp4Block),
    info: { version: 2, command: 'LOCAL', family: 'UNKNOWN', source: null, destination: null },
    length: 28,
  },
  {
    name: 'v2 PROXY UNSPEC',
    input: v2(0x21, 0x00, tlv),
    info: { version: 2, command: 'PROXY', family: 'UNKNOWN', source: null, destination: null },
    length: 24,
  },
  {
    name: 'v2 PROXY over a UNIX stream socket',
    input: v2(0x21, 0x31, Buffer.alloc(216, 0x61)),
    info: { version: 2, command: 'PROXY', family: 'UNKNOWN', source: null, destination: null },
    length: 232,
  },
];

const INVALID: { name: string; input: Buffer; decidedBy?: number }[] = [
  { name: 'a POP3 command', input: latin1('CAPA\r\n'), decidedBy: 1 },
  { name: 'a TLS ClientHello', input: Buffer.from('160301020001', 'hex'), decidedBy: 1 },
  { name: 'a lower-case proxy line', input: latin1('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), decidedBy: 1 },
  { name: 'something close to the v2 signature', input: Buffer.from('0d0a0d0a0a', 'hex'), decidedBy: 5 },
  { name: 'a v1 line ended by a bare LF', input: latin1('PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n') },
  { name: 'a v1 line with a bare CR', input: latin1('PROXY TCP4 192.0.2.1\r198.51.100.7 1 2\r\n'), decidedBy: 22 },
  { name: 'a v1 line with a control byte', input: latin1('PROXY TCP4 192.0.2.1\t198.51.100.7 1 2\r\n'), decidedBy: 21 },
  { name: 'a v1 line with no CRLF in 107 bytes', input: latin1(`PROXY UNKNOWN ${'x'.repeat(93)}\r\n`), decidedBy: 107 },
  { name: 'a v1 port above 65535', input: latin1('PROXY TCP4 192.0.2.1 198.51.100.7 65536 110\r\n') },
  { name: 'a v1 port with a leading zero', input: latin1('PROXY TCP4 192.0.2.1 198.51.100.7 0110 110\r\n') },
  { name: 'a v1 port that is not a number', input: latin1('PROXY TCP4 192.0.2.1 198.51.100.7 -1 110\r\n') },
  { name: 'a v1 IPv4 with a leading zero', input: latin1('PROXY TCP4 192.0.2.01 198.51.100.7 1 2\r\n') },
  { name: 'a v1 IPv4 in short form', input: latin1('PROXY TCP4 127.1 198.51.100.7 1 2\r\n') },
  { name: 'a v1 TCP4 with an IPv6 address', input: latin1('PROXY TCP4 ::1 198.51.100.7 1 2\r\n') },
  { name: 'a v1 TCP6 with an IPv4 address', input: latin1('PROXY TCP6 192.0.2.1 ::1 1 2\r\n') },
  { name: 'a v1 TCP6 with a zone id', input: latin1('PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n') },
  { name: 'a v1 TCP6 with a bad embedded IPv4', input: latin1('PROXY TCP6 ::ffff:1.02.3.4 ::1 1 2\r\n') },
  { name: 'a v1 line with a missing field', input: latin1('PROXY TCP4 192.0.2.1 198.51.100.7 110\r\n') },
  { name: 'a v1 line with an extra field', input: latin1('PROXY TCP4 192.0.2.1 198.51.100.7 1 2 3\r\n') },
  { name: 'a v1 line with a double space', input: latin1('PROXY TCP4  192.0.2.1 198.51.100.7 1 2\r\n') },
  { name: 'a v1 UDP4 line', input: latin1('PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n') },
  { name: 'a v2 header of version 1', input: v2(0x11, 0x11, tcp4Block), decidedBy: 13 },
  { name: 'a v2 header with an unknown command', input: v2(0x22, 0x11, tcp4Block), decidedBy: 13 },
  { name: 'a v2 header with an unknown family', input: v2(0x21, 0x41, tcp4Block), decidedBy: 14 },
  { name: 'a v2 header with an unlisted family byte', input: v2(0x21, 0x10, tcp4Block), decidedBy: 14 },
  { name: 'a v2 UDP header', input: v2(0x21, 0x12, tcp4Block) },
  { name: 'a v2 TCP4 block that is too short', input: v2(0x21, 0x11, tcp4Block.subarray(0, 11)) },
  { name: 'a v2 TCP6 block that is too short', input: v2(0x21, 0x21, tcp4Block) },
];

describe('parseProxyHeader', () => {
  for (const f of VALID) {
    it(`reads ${f.name} however the bytes arrive`, () => {
      const expected = { status: 'ok', info: f.info, length: f.length };
      // Bytes after the header belong to the session and must not change the result.
      const input = Buffer.concat([f.input, latin1('CAPA\r\n')]);
      expect(parseProxyHeader(input)).toEqual(expected);
      for (const chunks of everySingleSplit(input)) expect(parseStream(chunks)).toEqual(expected);
      expect(parseStream(byteByByte(input))).toEqual(expected);
      fc.assert(fc.property(cutsFor(input.length), (cuts) => { expect(parseStream(chunksAt(input, cuts))).toEqual(expected); }), {
        numRuns: 100,
      });
      for (let n = 0; n < f.length; n++) expect(parseProxyHeader(input.subarray(0, n))).toEqual({ status: 'more' });
    });
  }

  for (const f of INVALID) {
    it(`refuses ${f.name}${f.decidedBy === undefined ? '' : ` after ${f.decidedBy} byte(s)`}`, () => {
      const whole = parseProxyHeader(f.input);
      expect(whole.status).toBe('invalid');
      for (const chunks of everySingleSplit(f.input)) expect(parseStream(chunks)).toEqual(whole);
      fc.assert(fc.property(cutsFor(f.input.length), (cuts) => { expect(parseStream(chunksAt(f.input, cuts))).toEqual(whole); }), {
        numRuns: 50,
      });
      if (f.decidedBy !== undefined) {
        expect(parseProxyHeader(f.input.subarray(0, f.decidedBy - 1)).status).toBe('more');
        expect(parseProxyHeader(f.input.subarray(0, f.decidedBy))).toEqual(whole);
      }
    });
  }

  it('waits on an empty buffer', () => {
    expect(parseProxyHeader(Buffer.alloc(0))).toEqual({ status: 'more' });
  });
});

describe('buildProxyV1 and buildProxyV2', () => {
  const src = { address: '192.0.2.1', port: 54321 };
  const dst = { address: '198.51.100.7', port: 110 };

  it('writes the v1 text line', () => {
    expect(buildProxyV1(src, dst)).toEqual(latin1('PROXY TCP4 192.0.2.1 198.51.100.7 54321 110\r\n'));
    expect(buildProxyV1({ address: '2001:DB8::1', port: 1 }, { address: '::1', port: 2 })).toEqual(
      latin1('PROXY TCP6 2001:db8::1 ::1 1 2\r\n'),
    );
  });

  it('writes the v2 binary header', () => {
    expect(buildProxyV2(src, dst)).toEqual(v2(0x21, 0x11, tcp4Block));
  });

  it('emits TCP4 for IPv4-mapped IPv6 socket addresses', () => {
    const mapped = { address: '::ffff:192.0.2.1', port: 54321 };
    const mappedDst = { address: '::FFFF:198.51.100.7', port: 110 };
    expect(buildProxyV1(mapped, mappedDst)).toEqual(latin1('PROXY TCP4 192.0.2.1 198.51.100.7 54321 110\r\n'));
    expect(buildProxyV2(mapped, mappedDst)).toEqual(v2(0x21, 0x11, tcp4Block));
  });

  it('maps IPv4 into IPv6 when the two addresses are of different families', () => {
    expect(buildProxyV1({ address: '2001:db8::1', port: 1 }, dst)).toEqual(
      latin1('PROXY TCP6 2001:db8::1 ::ffff:198.51.100.7 1 110\r\n'),
    );
    const parsed = parseProxyHeader(buildProxyV2(src, { address: '::1', port: 2 }));
    expect(parsed.status === 'ok' && parsed.info.source).toEqual({ address: '::ffff:192.0.2.1', port: 54321 });
  });

  it('drops an IPv6 zone id', () => {
    expect(buildProxyV1({ address: 'fe80::1%eth0', port: 1 }, { address: 'fe80::2', port: 2 })).toEqual(
      latin1('PROXY TCP6 fe80::1 fe80::2 1 2\r\n'),
    );
  });

  it('refuses bad addresses and ports', () => {
    expect(() => buildProxyV1({ address: 'localhost', port: 1 }, dst)).toThrow(RangeError);
    expect(() => buildProxyV1({ ...src, port: 65536 }, dst)).toThrow(RangeError);
    expect(() => buildProxyV2(src, { ...dst, port: -1 })).toThrow(RangeError);
    expect(() => buildProxyV2(src, { ...dst, port: 1.5 })).toThrow(RangeError);
  });

  it('round-trips random addresses and ports through both versions', () => {
    const address = fc.oneof(fc.ipV4(), fc.ipV6());
    const port = fc.integer({ min: 0, max: 65535 });
    fc.assert(
      fc.property(address, port, address, port, (sa, sp, da, dp) => {
        const canonical = (a: string, v6: boolean) => {
          const parsed = ipaddr.process(a);
          if (parsed.kind() === 'ipv4' && v6) return `::ffff:${parsed.toString()}`;
          return parsed.toString();
        };
        const v6 = ipaddr.process(sa).kind() === 'ipv6' || ipaddr.process(da).kind() === 'ipv6';
        for (const build of [buildProxyV1, buildProxyV2]) {
          const result = parseProxyHeader(build({ address: sa, port: sp }, { address: da, port: dp }));
          expect(result.status).toBe('ok');
          if (result.status !== 'ok') return;
          expect(result.info.family).toBe(v6 ? 'TCP6' : 'TCP4');
          expect(result.info.source).toEqual({ address: canonical(sa, v6), port: sp });
          expect(result.info.destination).toEqual({ address: canonical(da, v6), port: dp });
        }
      }),
      { numRuns: 300 },
    );
  });
});
