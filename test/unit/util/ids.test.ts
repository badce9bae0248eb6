import { describe, expect, it } from 'vitest';
import { newSessionId } from '../../../src/util/ids.ts';

describe('newSessionId', () => {
  it('gives 16 base64url characters, all different across several refills of the random pool', () => {
    const ids = Array.from({ length: 2000 }, () => newSessionId());
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
