/**
 * A look at the first bytes of a TLS connection, before OpenSSL sees them: does the client's
 * ClientHello offer TLS 1.3 (RFC 8446 §4.1.2, §4.2.1: the supported_versions extension)?
 *
 * Only a hint for choosing how to serve the handshake, never a security decision: OpenSSL parses
 * the same bytes again and negotiates on its own. Anything this cannot read in full (a hello
 * split over several reads, an SSLv2-style hello, garbage) is `null`, "cannot tell".
 */

const HANDSHAKE_RECORD = 0x16;
const CLIENT_HELLO = 0x01;
const SUPPORTED_VERSIONS = 0x002b;
const TLS1_3 = 0x0304;

/**
 * true: the hello offers TLS 1.3; false: it is a whole ClientHello that does not (TLS 1.2 or
 * older); null: not a whole ClientHello in the first record of `buf`.
 */
export function offersTls13(buf: Buffer): boolean | null {
  // Record header: type, legacy version (2), length (2).
  if (buf.length < 5 || buf[0] !== HANDSHAKE_RECORD || buf[1] !== 0x03) return null;
  const recordEnd = 5 + buf.readUInt16BE(3);
  if (recordEnd > buf.length) return null;
  // Handshake header: type, length (3). The hello must sit whole in this record.
  if (recordEnd < 9 || buf[5] !== CLIENT_HELLO) return null;
  const helloEnd = 9 + buf.readUIntBE(6, 3);
  if (helloEnd > recordEnd) return null;
  let p = 9 + 2 + 32; // legacy_version, random
  if (p + 1 > helloEnd) return null;
  p += 1 + buf[p]!; // legacy_session_id
  if (p + 2 > helloEnd) return null;
  p += 2 + buf.readUInt16BE(p); // cipher_suites
  if (p + 1 > helloEnd) return null;
  p += 1 + buf[p]!; // legacy_compression_methods
  if (p === helloEnd) return false; // no extensions at all: an old client
  if (p + 2 > helloEnd) return null;
  const extEnd = p + 2 + buf.readUInt16BE(p);
  if (extEnd > helloEnd) return null;
  p += 2;
  while (p + 4 <= extEnd) {
    const type = buf.readUInt16BE(p);
    const len = buf.readUInt16BE(p + 2);
    const body = p + 4;
    if (body + len > extEnd) return null;
    if (type === SUPPORTED_VERSIONS) {
      // ClientHello form: a one-byte length, then two-byte versions.
      if (len < 1 || buf[body]! + 1 !== len || (len - 1) % 2 !== 0) return null;
      for (let v = body + 1; v < body + len; v += 2) if (buf.readUInt16BE(v) === TLS1_3) return true;
      return false;
    }
    p = body + len;
  }
  return p === extEnd ? false : null;
}
