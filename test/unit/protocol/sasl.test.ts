import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  LOGIN_PASS_PROMPT,
  LOGIN_USER_PROMPT,
  Secret,
  decodeBase64Strict,
  decodeLoginField,
  decodePlain,
  encodePlain,
  hasForbiddenChars,
  isCancel,
  userFromOauthbearer,
  userFromXoauth2,
} from '../../../src/protocol/sasl.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('Secret', () => {
  it('gives its value only through reveal()', () => {
    const secret = new Secret('hunter2');
    expect(secret.reveal()).toBe('hunter2');
    expect(String(secret)).toBe('[redacted]');
    expect(`${secret}`).toBe('[redacted]');
    expect(JSON.stringify({ password: secret })).toBe('{"password":"[redacted]"}');
    expect(inspect(secret)).toBe('[redacted]');
    expect(inspect({ nested: { secret } }, { depth: 5 })).not.toContain('hunter2');
    expect(Object.keys(secret)).toEqual([]);
  });
});

describe('decodeBase64Strict', () => {
  const valid: [string, string][] = [
    ['', ''],
    ['=', ''],
    ['QQ==', 'A'],
    ['QUI=', 'AB'],
    ['QUJD', 'ABC'],
    ['AGFsaWNlAHNlY3JldA==', '\0alice\0secret'],
    ['+/+/', '\xfb\xff\xbf'],
  ];
  for (const [input, output] of valid) {
    it(`decodes ${JSON.stringify(input)}`, () => {
      expect(decodeBase64Strict(input)).toEqual(Buffer.from(output, 'latin1'));
    });
  }

  const invalid = ['==', 'Q', 'QQ', 'QQ=', 'QQ===', 'QR==', 'QUJ', 'QUJ==', 'QU=D', ' QUJD', 'QUJD ', 'QU\r\nJD', 'QUJD\n', 'QU JD', '-_-_', 'QUJD*', '*'];
  for (const input of invalid) {
    it(`refuses ${JSON.stringify(input)}`, () => {
      expect(decodeBase64Strict(input)).toBeNull();
    });
  }

  it('round-trips any bytes through canonical base64', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(decodeBase64Strict(Buffer.from(bytes).toString('base64'))).toEqual(Buffer.from(bytes));
      }),
    );
  });
});

describe('decodePlain', () => {
  it('splits authzid, authcid and password', () => {
    const result = decodePlain(b64('admin\0alice\0pass word'));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value.authzid).toBe('admin');
    expect(result.value.authcid).toBe('alice');
    expect(result.value.password).toBeInstanceOf(Secret);
    expect(result.value.password.reveal()).toBe('pass word');
  });

  it('accepts an empty authzid and UTF-8 names', () => {
    const result = decodePlain(b64('\0j\u00fcrgen@example.org\0p\u00e4ss'));
    expect(result.ok && [result.value.authzid, result.value.authcid, result.value.password.reveal()]).toEqual([
      '',
      'j\u00fcrgen@example.org',
      'p\u00e4ss',
    ]);
  });

  const bad: [name: string, input: string, error: 'bad-base64' | 'bad-format' | 'bad-char'][] = [
    ['not base64', 'not base64!', 'bad-base64'],
    ['non-canonical base64', 'AGFsaWNlAHNlY3JldB==', 'bad-base64'],
    ['no NUL at all', b64('alice'), 'bad-format'],
    ['one NUL only', b64('alice\0secret'), 'bad-format'],
    ['an empty authcid', b64('\0\0secret'), 'bad-format'],
    ['an empty password', b64('\0alice\0'), 'bad-format'],
    ['invalid UTF-8', Buffer.from('\0al\xffice\0secret', 'latin1').toString('base64'), 'bad-format'],
    ['an empty response', '=', 'bad-format'],
    ['a NUL inside the password', b64('\0alice\0sec\0ret'), 'bad-char'],
    ['a CR in the authcid', b64('\0ali\rce\0secret'), 'bad-char'],
    ['an LF in the password', b64('\0alice\0secret\nDELE 1'), 'bad-char'],
    ['a CRLF in the authzid', b64('x\r\ny\0alice\0secret'), 'bad-char'],
  ];
  for (const [name, input, error] of bad) {
    it(`refuses ${name} as ${error}`, () => {
      expect(decodePlain(input)).toEqual({ ok: false, error });
    });
  }
});

describe('encodePlain', () => {
  it('encodes the RFC 4616 message and decodePlain reads it back', () => {
    expect(encodePlain('tim', new Secret('tanstaaftanstaaf'))).toBe(b64('\0tim\0tanstaaftanstaaf'));
    expect(encodePlain('Ursel', new Secret('kurt\u00e4t'), 'Kurt')).toBe(b64('Kurt\0Ursel\0kurt\u00e4t'));
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (authzid, authcid, password) => {
        fc.pre(!hasForbiddenChars(authzid + authcid + password));
        fc.pre(!/[\ud800-\udfff]/.test(authzid + authcid + password)); // lone surrogates are not UTF-8
        const decoded = decodePlain(encodePlain(authcid, new Secret(password), authzid));
        expect(decoded.ok && [decoded.value.authzid, decoded.value.authcid, decoded.value.password.reveal()]).toEqual([
          authzid,
          authcid,
          password,
        ]);
      }),
    );
  });

  it('refuses to encode CR, LF or NUL', () => {
    expect(() => encodePlain('a\r\nb', new Secret('x'))).toThrow(RangeError);
    expect(() => encodePlain('a', new Secret('x\0y'))).toThrow(RangeError);
  });
});

describe('LOGIN', () => {
  it('prompts with base64 "Username:" and "Password:"', () => {
    expect(LOGIN_USER_PROMPT).toBe('VXNlcm5hbWU6');
    expect(LOGIN_PASS_PROMPT).toBe('UGFzc3dvcmQ6');
  });

  it('decodes a field as UTF-8', () => {
    expect(decodeLoginField(b64('j\u00fcrgen'))).toEqual({ ok: true, value: 'j\u00fcrgen' });
    expect(decodeLoginField('=')).toEqual({ ok: true, value: '' });
  });

  it('refuses bad base64, control characters and invalid UTF-8', () => {
    expect(decodeLoginField('@@@@')).toEqual({ ok: false, error: 'bad-base64' });
    expect(decodeLoginField(b64('alice\r\nDELE 1'))).toEqual({ ok: false, error: 'bad-char' });
    expect(decodeLoginField(b64('ali\0ce'))).toEqual({ ok: false, error: 'bad-char' });
    expect(decodeLoginField(Buffer.from([0xc3, 0x28]).toString('base64'))).toEqual({ ok: false, error: 'bad-char' });
  });
});

describe('userFromXoauth2', () => {
  it('reads the user= field', () => {
    expect(userFromXoauth2(b64('user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01'))).toBe(
      'someuser@example.com',
    );
  });

  it('returns null when the user is missing, empty, unsafe or the data is not base64', () => {
    expect(userFromXoauth2(b64('auth=Bearer token\x01\x01'))).toBeNull();
    expect(userFromXoauth2(b64('user=\x01auth=Bearer token\x01\x01'))).toBeNull();
    expect(userFromXoauth2(b64('user=a\r\nb\x01auth=Bearer token\x01\x01'))).toBeNull();
    expect(userFromXoauth2('not base64')).toBeNull();
  });
});

describe('userFromOauthbearer', () => {
  it('reads the authzid of the GS2 header (RFC 7628 section 4.1 example)', () => {
    const message = 'n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01';
    expect(userFromOauthbearer(b64(message))).toBe('user@example.com');
  });

  it('unescapes =2C and =3D in the authzid', () => {
    expect(userFromOauthbearer(b64('y,a=odd=2Cname=3Dx,\x01auth=Bearer t\x01\x01'))).toBe('odd,name=x');
  });

  it('returns null without an authzid or with a malformed header', () => {
    expect(userFromOauthbearer(b64('n,,\x01auth=Bearer t\x01\x01'))).toBeNull();
    expect(userFromOauthbearer(b64('x,a=user,\x01auth=Bearer t\x01\x01'))).toBeNull();
    expect(userFromOauthbearer(b64('n,a=bad=escape,\x01auth=Bearer t\x01\x01'))).toBeNull();
    expect(userFromOauthbearer(b64('n,a=user'))).toBeNull();
    expect(userFromOauthbearer(b64('n,a=,\x01\x01'))).toBeNull();
    expect(userFromOauthbearer('***')).toBeNull();
  });
});

describe('isCancel and hasForbiddenChars', () => {
  it('treats only a lone "*" as a cancel', () => {
    expect(isCancel('*')).toBe(true);
    expect(isCancel(' *')).toBe(false);
    expect(isCancel('**')).toBe(false);
    expect(isCancel('')).toBe(false);
  });

  it('flags CR, LF and NUL only', () => {
    expect(hasForbiddenChars('a\rb')).toBe(true);
    expect(hasForbiddenChars('a\nb')).toBe(true);
    expect(hasForbiddenChars('a\0b')).toBe(true);
    expect(hasForbiddenChars('a\tb \u00e9')).toBe(false);
  });
});
