/**
 * SASL wire helpers for the POP3 AUTH command (RFC 5034): strict base64, PLAIN (RFC 4616), LOGIN
 * (draft-murchison-sasl-login), and the user names inside the relayed mechanisms' first client
 * message: CRAM-MD5 (RFC 2195), SCRAM (RFC 5802), XOAUTH2 and OAUTHBEARER (RFC 7628).
 * Credentials are wrapped in Secret so that no log line or JSON dump can print them by accident.
 */

const INSPECT = Symbol.for('nodejs.util.inspect.custom');
const REDACTED = '[redacted]';

/** A credential. Only reveal() gives the value; every other way of printing it says "[redacted]". */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [INSPECT](): string {
    return REDACTED;
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decode canonical base64: alphabet only, correct padding, zero trailing bits, no whitespace.
 * "=" is an empty initial response (RFC 5034 section 4); an empty line is an empty continuation.
 */
export function decodeBase64Strict(s: string): Buffer | null {
  if (s === '=' || s === '') return Buffer.alloc(0);
  if (!BASE64.test(s)) return null;
  const bytes = Buffer.from(s, 'base64');
  // Re-encoding catches non-zero pad bits ("QR==" would decode like "QQ==").
  return bytes.toString('base64') === s ? bytes : null;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(bytes: Buffer): string | null {
  try {
    return utf8.decode(bytes);
  } catch (err) {
    if (err instanceof TypeError) return null; // invalid UTF-8
    throw err;
  }
}

/** CR, LF or NUL: any of them in a credential would break the line we send to the backend. */
export function hasForbiddenChars(s: string): boolean {
  return /[\r\n\0]/.test(s);
}

export type PlainCredentials = { authzid: string; authcid: string; password: Secret };

/** RFC 4616: [authzid] NUL authcid NUL passwd, UTF-8; authcid and passwd are not empty. */
export function decodePlain(
  b64: string,
): { ok: true; value: PlainCredentials } | { ok: false; error: 'bad-base64' | 'bad-format' | 'bad-char' } {
  const bytes = decodeBase64Strict(b64);
  if (bytes === null) return { ok: false, error: 'bad-base64' };
  const text = decodeUtf8(bytes);
  if (text === null) return { ok: false, error: 'bad-format' };
  const firstNul = text.indexOf('\0');
  const secondNul = firstNul < 0 ? -1 : text.indexOf('\0', firstNul + 1);
  if (secondNul < 0) return { ok: false, error: 'bad-format' };
  const authzid = text.slice(0, firstNul);
  const authcid = text.slice(firstNul + 1, secondNul);
  const password = text.slice(secondNul + 1);
  if (authcid === '' || password === '') return { ok: false, error: 'bad-format' };
  if (hasForbiddenChars(authzid) || hasForbiddenChars(authcid) || hasForbiddenChars(password)) {
    return { ok: false, error: 'bad-char' };
  }
  return { ok: true, value: { authzid, authcid, password: new Secret(password) } };
}

/** The PLAIN initial response, base64. Throws on CR/LF/NUL in any part (a bug upstream). */
export function encodePlain(authcid: string, password: Secret, authzid = ''): string {
  const secret = password.reveal();
  if (hasForbiddenChars(authzid) || hasForbiddenChars(authcid) || hasForbiddenChars(secret)) {
    throw new RangeError('PLAIN credentials contain CR, LF or NUL');
  }
  return Buffer.from(`${authzid}\0${authcid}\0${secret}`, 'utf8').toString('base64');
}

export const LOGIN_USER_PROMPT: string = Buffer.from('Username:', 'latin1').toString('base64');
export const LOGIN_PASS_PROMPT: string = Buffer.from('Password:', 'latin1').toString('base64');

/**
 * One LOGIN response (user name or password), UTF-8. Invalid UTF-8 counts as bad-char: the
 * mechanism names no charset, and bytes we cannot represent faithfully must not be guessed at.
 */
export function decodeLoginField(
  b64: string,
): { ok: true; value: string } | { ok: false; error: 'bad-base64' | 'bad-char' } {
  const bytes = decodeBase64Strict(b64);
  if (bytes === null) return { ok: false, error: 'bad-base64' };
  const text = decodeUtf8(bytes);
  if (text === null || hasForbiddenChars(text)) return { ok: false, error: 'bad-char' };
  return { ok: true, value: text };
}

function decodeToText(b64: string): string | null {
  const bytes = decodeBase64Strict(b64);
  return bytes === null ? null : decodeUtf8(bytes);
}

/** XOAUTH2 initial response: "user=" name ^A "auth=Bearer " token ^A ^A. Returns the name. */
export function userFromXoauth2(b64: string): string | null {
  const text = decodeToText(b64);
  if (text === null) return null;
  for (const field of text.split('\x01')) {
    if (field.startsWith('user=')) {
      const user = field.slice('user='.length);
      return user === '' || hasForbiddenChars(user) ? null : user;
    }
  }
  return null;
}

/**
 * OAUTHBEARER (RFC 7628 section 3.1): gs2-header = cbind-flag "," ["a=" saslname] "," then ^A kvpairs.
 * Returns the authzid with "=2C" and "=3D" unescaped (RFC 5801), or null when absent or malformed.
 */
export function userFromOauthbearer(b64: string): string | null {
  const text = decodeToText(b64);
  if (text === null) return null;
  const flagEnd = text.indexOf(',');
  if (flagEnd < 0) return null;
  const flag = text.slice(0, flagEnd);
  if (flag !== 'n' && flag !== 'y' && !flag.startsWith('p=')) return null;
  const authzEnd = text.indexOf(',', flagEnd + 1);
  if (authzEnd < 0) return null;
  const authz = text.slice(flagEnd + 1, authzEnd);
  if (!authz.startsWith('a=')) return null;
  const saslname = authz.slice(2);
  // "=" may only start one of the two escapes; anything else is malformed.
  if (/=(?!2C|3D)/.test(saslname)) return null;
  const user = saslname.replace(/=2C/g, ',').replace(/=3D/g, '=');
  return user === '' || hasForbiddenChars(user) ? null : user;
}

/** RFC 5801 saslname: "=2C" is ",", "=3D" is "="; any other "=" is malformed (null). */
function decodeSaslname(name: string): string | null {
  if (/=(?!2C|3D)/.test(name)) return null;
  const user = name.replace(/=2C/g, ',').replace(/=3D/g, '=');
  return user === '' || hasForbiddenChars(user) ? null : user;
}

/**
 * CRAM-MD5 (RFC 2195) client response: base64 of `user SP digest`, the digest 32 hex digits.
 * The user is everything before the last space (a name may hold spaces).
 */
export function userFromCramMd5(b64: string): string | null {
  const text = decodeToText(b64);
  if (text === null) return null;
  const sp = text.lastIndexOf(' ');
  if (sp <= 0 || !/^[0-9a-fA-F]{32}$/.test(text.slice(sp + 1))) return null;
  const user = text.slice(0, sp);
  return hasForbiddenChars(user) ? null : user;
}

/**
 * SCRAM (RFC 5802) client-first-message: gs2-header then `n=saslname,r=nonce[,ext]`. Returns the
 * authentication name. Channel binding ("p=") cannot pass through a TLS-terminating proxy, a
 * mandatory extension ("m=") is unknown, and an authzid other than the user itself would log in
 * as someone else: all three are malformed here (null).
 */
export function userFromScramClientFirst(b64: string): string | null {
  const text = decodeToText(b64);
  if (text === null) return null;
  const m = /^([ny]),(a=[^,]*)?,n=([^,]*),r=[^,]+(?:,.*)?$/s.exec(text);
  if (m === null) return null;
  const user = decodeSaslname(m[3]!);
  if (user === null) return null;
  if (m[2] !== undefined && decodeSaslname(m[2].slice(2)) !== user) return null;
  return user;
}

/**
 * Mechanisms the gateway relays to the backend because it can read the user from the client's
 * first message (its initial response, or its first line when there is none). Anything else
 * (GSSAPI, NTLM, DIGEST-MD5, the SCRAM -PLUS variants ...) is neither offered nor accepted.
 */
export const RELAYED_MECHANISMS = ['CRAM-MD5', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'XOAUTH2', 'OAUTHBEARER'] as const;

export function isRelayedMechanism(m: string): boolean {
  return (RELAYED_MECHANISMS as readonly string[]).includes(m);
}

/** The user in a relayed mechanism's first client message; null when unreadable or malformed. */
export function userFromClientFirst(mechanism: string, b64: string): string | null {
  switch (mechanism) {
    case 'CRAM-MD5': return userFromCramMd5(b64);
    case 'SCRAM-SHA-1':
    case 'SCRAM-SHA-256': return userFromScramClientFirst(b64);
    case 'XOAUTH2': return userFromXoauth2(b64);
    case 'OAUTHBEARER': return userFromOauthbearer(b64);
    default: return null;
  }
}

/** RFC 5034 section 4: a client line of "*" cancels the exchange. */
export function isCancel(line: string): boolean {
  return line === '*';
}
