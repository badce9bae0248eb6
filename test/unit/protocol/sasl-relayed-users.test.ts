/**
 * Reading the user out of a relayed SASL mechanism's first client message (issue 9 item 4):
 * CRAM-MD5's response and SCRAM's client-first-message, as table tests.
 */
import { describe, expect, it } from 'vitest';
import { isRelayedMechanism, userFromClientFirst, userFromCramMd5, userFromScramClientFirst } from '../../../src/protocol/sasl.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const DIGEST = 'b913a602c7eda7a495b4e6e7334d3890';

describe('userFromCramMd5', () => {
  it.each([
    ['a plain name', `alice ${DIGEST}`, 'alice'],
    ['a full address', `alice@example.org ${DIGEST}`, 'alice@example.org'],
    ['a name with a space: everything before the last space', `alice smith ${DIGEST}`, 'alice smith'],
    ['an upper-case digest', `bob ${DIGEST.toUpperCase()}`, 'bob'],
    ['UTF-8', `jürgen ${DIGEST}`, 'jürgen'],
    ['no space', `alice${DIGEST}`, null],
    ['an empty name', ` ${DIGEST}`, null],
    ['a short digest', 'alice b913a602', null],
    ['a digest that is not hex', `alice ${'z'.repeat(32)}`, null],
    ['a CR in the name', `ali\rce ${DIGEST}`, null],
  ])('%s', (_what, text, want) => {
    expect(userFromCramMd5(b64(text))).toBe(want);
  });

  it('refuses what is not strict base64', () => {
    expect(userFromCramMd5('not base64!')).toBeNull();
    expect(userFromCramMd5(Buffer.from([0xff, 0x20, ...Buffer.from(DIGEST)]).toString('base64'))).toBeNull();
  });
});

describe('userFromScramClientFirst', () => {
  it.each([
    ['no channel binding', 'n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL', 'alice'],
    ['"y" flag', 'y,,n=alice,r=abc', 'alice'],
    ['escaped comma and equals', 'n,,n=a=2Cb=3Dc,r=abc', 'a,b=c'],
    ['an authzid equal to the user', 'n,a=alice,n=alice,r=abc', 'alice'],
    ['extensions after the nonce', 'n,,n=alice,r=abc,x=1', 'alice'],
    ['an authzid naming someone else', 'n,a=admin,n=alice,r=abc', null],
    ['channel binding (cannot pass a TLS-terminating proxy)', 'p=tls-unique,,n=alice,r=abc', null],
    ['a mandatory extension', 'n,,m=ext,n=alice,r=abc', null],
    ['a bad escape', 'n,,n=al=41ice,r=abc', null],
    ['an empty name', 'n,,n=,r=abc', null],
    ['no nonce', 'n,,n=alice', null],
    ['no gs2 header', 'n=alice,r=abc', null],
    ['a NUL in the name', 'n,,n=al\0ice,r=abc', null],
  ])('%s', (_what, text, want) => {
    expect(userFromScramClientFirst(b64(text))).toBe(want);
  });
});

describe('userFromClientFirst', () => {
  it.each([
    ['CRAM-MD5', `carol ${DIGEST}`, 'carol'],
    ['SCRAM-SHA-1', 'n,,n=carol,r=abc', 'carol'],
    ['SCRAM-SHA-256', 'n,,n=carol,r=abc', 'carol'],
    ['XOAUTH2', 'user=carol\x01auth=Bearer t\x01\x01', 'carol'],
    ['OAUTHBEARER', 'n,a=carol,\x01auth=Bearer t\x01\x01', 'carol'],
    ['GSSAPI', 'anything', null],
    ['DIGEST-MD5', 'username="carol"', null],
  ])('%s', (mech, text, want) => {
    expect(userFromClientFirst(mech, b64(text))).toBe(want);
  });

  it('relays only mechanisms whose user it can read', () => {
    expect(['CRAM-MD5', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'XOAUTH2', 'OAUTHBEARER'].every(isRelayedMechanism)).toBe(true);
    expect(['GSSAPI', 'NTLM', 'DIGEST-MD5', 'SCRAM-SHA-256-PLUS', 'PLAIN', 'EXTERNAL'].some(isRelayedMechanism)).toBe(false);
  });
});
