import { describe, expect, it } from 'vitest';
import { redactCredentials } from '../../../src/config/redact.ts';
import { onlyProblem } from './helpers.ts';

describe('problem reports never echo a secret', () => {
  it('shows a rejected admin token by its length only', () => {
    const p = onlyProblem((raw) => (raw.admin = { token: 'hunt2' }));
    expect(p.message).toBe('found <redacted, 5 characters>');
    expect(JSON.stringify(p)).not.toContain('hunt2');
  });

  it('shows a token that is not a string as redacted', () => {
    const p = onlyProblem((raw) => (raw.admin = { token: 12345 }));
    expect(p.message).toBe('found <redacted>');
    expect(JSON.stringify(p)).not.toContain('12345');
  });

  it.each([
    ['redis://:hunter2@redis.internal', 'found "redis://:***@redis.internal"'],
    ['redis://gw:hunter2@redis.internal', 'found "redis://gw:***@redis.internal"'],
    ['redis://hunter2@redis.internal/0?x=1', 'found "redis://***@redis.internal/0?x=1"'],
    ['rediss://:p@ss/hunter2@redis.internal', 'found "rediss://:***@redis.internal"'],
    ['hunter2@redis.internal:6379', 'found "***@redis.internal:6379"'],
  ])('masks the password of a rejected Redis URL %s', (url, message) => {
    const p = onlyProblem((raw) => (raw.policy = { rateLimitStore: url }));
    expect(p.path).toBe('policy.rateLimitStore');
    expect(p.message).toBe(message);
    expect(JSON.stringify(p)).not.toContain('hunter2');
  });

  it('masks URL credentials wherever a value lands, not only at known keys', () => {
    const p = onlyProblem((raw) => (raw.backend.host = 'redis://:hunter2@h'));
    expect(p.path).toBe('backend.host');
    expect(p.message).not.toContain('hunter2');
  });

  it('leaves user names with @ in ordinary values alone', () => {
    expect(redactCredentials('*@example.org')).toBe('*@example.org');
    expect(redactCredentials('see redis://u:pw@h:1 and redis://:x@h2:2')).toBe('see redis://u:***@h:1 and redis://:***@h2:2');
  });
});
