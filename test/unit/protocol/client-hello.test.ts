import { spawn } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { offersTls13 } from '../../../src/protocol/client-hello.ts';

/** The first chunk a real client sends: its ClientHello, caught by a plain TCP server. */
async function captureHello(connect: (port: number) => () => void): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const got = new Promise<Buffer>((resolve) => {
      server.once('connection', (s) => {
        let buf = Buffer.alloc(0);
        s.on('data', (c: Buffer) => {
          buf = Buffer.concat([buf, c]);
          if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
            resolve(buf);
            s.destroy();
          }
        });
        s.on('error', () => undefined);
      });
    });
    const stop = connect(port);
    try {
      return await got;
    } finally {
      stop();
    }
  } finally {
    server.close();
  }
}

function nodeHello(maxVersion: tls.SecureVersion): Promise<Buffer> {
  return captureHello((port) => {
    const c = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', maxVersion, rejectUnauthorized: false });
    c.on('error', () => undefined);
    return () => c.destroy();
  });
}

function opensslHello(flag: string): Promise<Buffer> {
  return captureHello((port) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, flag, '-servername', 'localhost'], { stdio: ['pipe', 'ignore', 'ignore'] });
    p.on('error', () => undefined);
    return () => p.kill();
  });
}

function pythonHello(version: 'TLSv1_2' | 'TLSv1_3'): Promise<Buffer> {
  const script = [
    'import socket, ssl, sys',
    'ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE',
    `ctx.maximum_version = ssl.TLSVersion.${version}`,
    'ctx.minimum_version = ssl.TLSVersion.TLSv1_2',
    's = socket.create_connection(("127.0.0.1", int(sys.argv[1])))',
    'try:\n  ctx.wrap_socket(s, server_hostname="localhost")\nexcept Exception:\n  pass',
  ].join('\n');
  return captureHello((port) => {
    const p = spawn('python3', ['-c', script, String(port)], { stdio: 'ignore' });
    p.on('error', () => undefined);
    return () => p.kill();
  });
}

/** A ClientHello built by hand: `extensions` null leaves the extensions block out entirely. */
function hello(extensions: Buffer | null, sessionId = Buffer.alloc(32, 7)): Buffer {
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]), Buffer.alloc(32, 1),
    Buffer.from([sessionId.length]), sessionId,
    Buffer.from([0x00, 0x02, 0x13, 0x01]), // one suite
    Buffer.from([0x01, 0x00]), // null compression
    extensions === null ? Buffer.alloc(0) : Buffer.concat([u16(extensions.length), extensions]),
  ]);
  const hs = Buffer.concat([Buffer.from([0x01, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(hs.length), hs]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function ext(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(data.length), data]);
}

const versions = (...v: number[]): Buffer => ext(0x002b, Buffer.concat([Buffer.from([v.length * 2]), ...v.map(u16)]));
const sni = ext(0x0000, Buffer.from('000c0000096c6f63616c686f7374', 'hex'));

describe('offersTls13: real clients', () => {
  it('Node, OpenSSL s_client and Python offering TLS 1.3: true', async () => {
    for (const h of [await nodeHello('TLSv1.3'), await opensslHello('-tls1_3'), await pythonHello('TLSv1_3')]) {
      expect(offersTls13(h)).toBe(true);
    }
  });

  it('the same clients held to TLS 1.2: false', async () => {
    for (const h of [await nodeHello('TLSv1.2'), await opensslHello('-tls1_2'), await pythonHello('TLSv1_2')]) {
      expect(offersTls13(h)).toBe(false);
    }
  });

  it('every cut of a real hello before its end: null, never a guess', async () => {
    const h = await nodeHello('TLSv1.3');
    for (let n = 0; n < h.length; n++) expect(offersTls13(h.subarray(0, n))).toBeNull();
    // Bytes after the record (a second record in the same read) do not change the answer.
    expect(offersTls13(Buffer.concat([h, Buffer.from([0x17, 0x03, 0x03, 0x00, 0x01, 0x00])]))).toBe(true);
  });
});

describe('offersTls13: built hellos', () => {
  it('reads supported_versions wherever it sits among the extensions', () => {
    expect(offersTls13(hello(Buffer.concat([sni, versions(0x0a0a, 0x0304, 0x0303)])))).toBe(true);
    expect(offersTls13(hello(Buffer.concat([versions(0x0303, 0x0304), sni])))).toBe(true);
    expect(offersTls13(hello(versions(0x0303, 0x0302)))).toBe(false);
    expect(offersTls13(hello(sni))).toBe(false);
    expect(offersTls13(hello(Buffer.alloc(0)))).toBe(false);
    expect(offersTls13(hello(null))).toBe(false);
    expect(offersTls13(hello(versions(0x0304), Buffer.alloc(0)))).toBe(true);
  });

  it('malformed lengths: null', () => {
    const bad = Buffer.concat([u16(0x002b), u16(3), Buffer.from([0x04, 0x03, 0x04])]); // list longer than the extension
    expect(offersTls13(hello(bad))).toBeNull();
    const odd = Buffer.concat([u16(0x002b), u16(2), Buffer.from([0x01, 0x03])]); // odd list length
    expect(offersTls13(hello(odd))).toBeNull();
    const over = Buffer.concat([u16(0x0000), u16(200), Buffer.alloc(4)]); // extension past the block
    expect(offersTls13(hello(over))).toBeNull();
    const trailing = Buffer.concat([sni, Buffer.from([0x00])]); // a stray byte after the last extension
    expect(offersTls13(hello(trailing))).toBeNull();
    const h = hello(versions(0x0304));
    h.writeUInt16BE(h.readUInt16BE(3) + 10, 3); // record claims more than there is
    expect(offersTls13(h)).toBeNull();
  });

  it('not a ClientHello: null', () => {
    expect(offersTls13(Buffer.from('USER bob\r\n'))).toBeNull();
    expect(offersTls13(Buffer.from('8080010301', 'hex'))).toBeNull(); // SSLv2-style hello
    const sh = hello(versions(0x0304));
    sh[5] = 0x02; // ServerHello
    expect(offersTls13(sh)).toBeNull();
    expect(offersTls13(Buffer.alloc(0))).toBeNull();
  });

  it('never throws on any bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (a) => {
      const r = offersTls13(Buffer.from(a));
      return r === null || typeof r === 'boolean';
    }), { numRuns: 2000 });
    // Nor on mutations of a valid hello (lengths are where parsers go wrong).
    const base = hello(Buffer.concat([sni, versions(0x0304, 0x0303)]));
    fc.assert(fc.property(fc.nat(base.length - 1), fc.nat(255), (i, v) => {
      const m = Buffer.from(base);
      m[i] = v;
      const r = offersTls13(m);
      return r === null || typeof r === 'boolean';
    }), { numRuns: 3000 });
  });
});
