import { describe, expect, it } from 'vitest';
import { cidrContains, isValidCidr, parseCidr, parseIp } from '../../../src/util/cidr.ts';

describe('isValidCidr', () => {
  it.each(['10.0.0.0/8', '192.0.2.7/32', '0.0.0.0/0', '2001:db8::/32', '::1/128', '::/0', '192.0.2.7', '::1', '::ffff:10.0.0.0/104'])(
    'accepts %j',
    (s) => {
      expect(isValidCidr(s)).toBe(true);
    },
  );

  it.each(['10.0.0.0/33', '2001:db8::/129', '10.0.0.0/', '10.0.0.0/x', '10.0.0/8', '0x7f.1', '2130706433', 'intranet', '',
    '10.0.0.0/8/8', '::ffff:10.0.0.0/95', ' 10.0.0.0/8', '10.0.0.0/08a'])('refuses %j', (s) => {
    expect(isValidCidr(s)).toBe(false);
  });
});

describe('parseCidr', () => {
  it('reads a bare IPv4 address as a /32 and a bare IPv6 address as a /128', () => {
    expect(parseCidr('192.0.2.7')?.bits).toBe(32);
    expect(parseCidr('2001:db8::1')?.bits).toBe(128);
  });

  it('reads an IPv4-mapped IPv6 range as the IPv4 range it covers', () => {
    const c = parseCidr('::ffff:10.0.0.0/104');
    expect(c?.address.kind()).toBe('ipv4');
    expect(c?.bits).toBe(8);
  });
});

describe('parseIp', () => {
  it('unwraps IPv4-mapped IPv6 addresses', () => {
    expect(parseIp('::ffff:1.2.3.4')?.toString()).toBe('1.2.3.4');
  });

  it('refuses the non-canonical IPv4 forms ipaddr.js would accept', () => {
    expect(parseIp('127.1')).toBeNull();
    expect(parseIp('0x7f000001')).toBeNull();
  });
});

describe('cidrContains', () => {
  it('matches IPv4 addresses inside the range only', () => {
    expect(cidrContains('10.0.0.0/8', '10.255.1.2')).toBe(true);
    expect(cidrContains('10.0.0.0/8', '11.0.0.1')).toBe(false);
  });

  it('matches IPv6 addresses inside the range only', () => {
    expect(cidrContains('2001:db8::/32', '2001:db8:ffff::1')).toBe(true);
    expect(cidrContains('2001:db8::/32', '2001:db9::1')).toBe(false);
  });

  it('matches an IPv4-mapped IPv6 client against an IPv4 range', () => {
    expect(cidrContains('1.2.3.0/24', '::ffff:1.2.3.4')).toBe(true);
    expect(cidrContains('1.2.3.0/24', '::ffff:1.2.4.4')).toBe(false);
  });

  it('matches an IPv4 client against an IPv4-mapped IPv6 range', () => {
    expect(cidrContains('::ffff:10.0.0.0/104', '10.1.2.3')).toBe(true);
  });

  it('never matches across address families', () => {
    expect(cidrContains('0.0.0.0/0', '::1')).toBe(false);
    expect(cidrContains('::/0', '127.0.0.1')).toBe(false);
  });

  it('treats a bare address as exactly that address', () => {
    expect(cidrContains('192.0.2.7', '192.0.2.7')).toBe(true);
    expect(cidrContains('192.0.2.7', '192.0.2.8')).toBe(false);
  });

  it('never matches when the range or the address cannot be parsed', () => {
    expect(cidrContains('nonsense', '10.0.0.1')).toBe(false);
    expect(cidrContains('10.0.0.0/8', 'nonsense')).toBe(false);
  });

  it('takes a parsed range and a parsed address as well as strings', () => {
    const range = parseCidr('10.0.0.0/8');
    const addr = parseIp('::ffff:10.9.9.9');
    if (range === null || addr === null) throw new Error('fixtures must parse');
    expect(cidrContains(range, addr)).toBe(true);
  });
});
