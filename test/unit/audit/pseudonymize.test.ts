import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isPseudonym, pseudonymizer } from '../../../src/audit/pseudonymize.ts';

describe('user pseudonyms', () => {
  it('without a key names pass through unchanged', () => {
    expect(pseudonymizer(null)('alice')).toBe('alice');
  });

  it('with a key a name becomes u: plus the first 16 hex chars of its HMAC-SHA256', () => {
    const expected = createHmac('sha256', 'k3y').update('alice').digest('hex').slice(0, 16);
    expect(pseudonymizer('k3y')('alice')).toBe(`u:${expected}`);
  });

  it('the same name always maps to the same pseudonym, different names and keys to different ones', () => {
    const p = pseudonymizer('secret');
    expect(p('alice')).toBe(p('alice'));
    expect(p('alice')).not.toBe(p('bob'));
    expect(pseudonymizer('other')('alice')).not.toBe(p('alice'));
  });

  it('pseudonyms are recognisable as such and never contain the name', () => {
    const p = pseudonymizer('secret')('alice@example.org');
    expect(isPseudonym(p)).toBe(true);
    expect(isPseudonym('alice')).toBe(false);
    expect(p).not.toContain('alice');
  });
});
