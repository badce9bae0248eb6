import { describe, expect, it } from 'vitest';
import { hostsOverlap } from '../../../src/config/cross-checks.ts';

describe('hostsOverlap', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1', true],
    ['0.0.0.0', '127.0.0.1', true],
    ['0.0.0.0', 'mail.example.org', true],
    ['::', '127.0.0.1', true],
    ['::', '::1', true],
    ['::1', '0:0:0:0:0:0:0:1', true],
    ['::ffff:127.0.0.1', '127.0.0.1', true],
    ['Localhost', 'localhost', true],
    ['127.0.0.1', '127.0.0.2', false],
    ['0.0.0.0', '::1', false],
    ['127.0.0.1', '::1', false],
    ['localhost', '127.0.0.1', false],
  ])('%s and %s overlap: %s', (a, b, expected) => {
    expect(hostsOverlap(a, b)).toBe(expected);
    expect(hostsOverlap(b, a)).toBe(expected);
  });
});
