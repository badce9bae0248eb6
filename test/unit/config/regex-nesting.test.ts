import { describe, expect, it } from 'vitest';
import { hasNestedQuantifier } from '../../../src/config/regex-nesting.ts';

describe('hasNestedQuantifier', () => {
  it.each([
    '(a+)+', '(.*)*', '^(a*)*$', '(?:a+)+', '(?<n>a+)*', '((a+))+', '(\\w+\\s?){2,}', '(a{1,5})+',
    '(a+b)+', '^(ops|noc-[a-z]+)*@x$', '(x[a-z]*)+?', '([^@]+@)+',
  ])('finds the nested repetition in %s', (source) => {
    expect(hasNestedQuantifier(source)).toBe(true);
  });

  it.each([
    '^(ops|noc)-.*@example\\.org$', '^archive[0-9]+@example\\.org$', '^ro-', '^legacy-[a-z]+$', '(a+)?',
    '(a+){2}', '(ab)+', '(a|b)*', '[(a+)]+', '\\(a+\\)+', '(?=a+)b', '(?<!x+)y', '(a)\\1+', 'a{2,3}(b)+',
  ])('finds none in %s', (source) => {
    expect(hasNestedQuantifier(source)).toBe(false);
  });
});
