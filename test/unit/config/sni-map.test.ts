import { describe, expect, it } from 'vitest';
import { SniMap } from '../../../src/config/sni-map.ts';

describe('SniMap', () => {
  const map = new SniMap([
    ['mail.example.org', 'exact'],
    ['*.example.org', 'wild'],
    ['Pop.Example.NET', 'mixed-case key'],
  ]);

  it.each([
    ['mail.example.org', 'exact'],
    ['MAIL.Example.ORG', 'exact'],
    ['mail.example.org.', 'exact'],
    ['pop.example.org', 'wild'],
    ['pop.example.net', 'mixed-case key'],
  ])('chooses %s -> %s', (name, expected) => {
    expect(map.lookup(name)).toBe(expected);
  });

  it.each([
    ['example.org'],
    ['a.b.example.org'],
    ['.example.org'],
    ['example.com'],
    [''],
  ])('matches nothing for %j', (name) => {
    expect(map.lookup(name)).toBeUndefined();
  });

  it('matches nothing when the client sent no server name', () => {
    expect(map.lookup(undefined)).toBeUndefined();
    expect(map.lookup(null)).toBeUndefined();
  });

  it('prefers an exact name over a wildcard that also covers it', () => {
    expect(new SniMap([['*.example.org', 'wild'], ['a.example.org', 'exact']]).lookup('a.example.org')).toBe('exact');
  });

  it('counts its entries', () => {
    expect(map.size).toBe(3);
    expect(new SniMap([]).size).toBe(0);
  });
});
