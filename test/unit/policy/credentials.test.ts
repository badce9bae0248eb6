import { describe, expect, it } from 'vitest';
import { credentialsVerdict, hasForbiddenCredentialChars } from '../../../src/policy/credentials.ts';

describe('decoded SASL credentials', () => {
  it.each(['a\rb', 'a\nb', 'a\0b', '\r\n'])('refuses %j', (bad) => {
    expect(hasForbiddenCredentialChars('alice', bad)).toBe(true);
    expect(credentialsVerdict(null, 'alice', bad)).toEqual({ kind: 'deny', reason: 'bad-credential-chars', reply: 'authFailed' });
  });

  it('accepts ordinary names and passwords, including spaces, tabs and Unicode', () => {
    expect(credentialsVerdict('', 'alice@example.org', 'p ä\tss')).toEqual({ kind: 'allow' });
    expect(hasForbiddenCredentialChars(null, undefined)).toBe(false);
  });
});
