import { describe, expect, it } from 'vitest';
import { clientKey, isLoopbackHost, NetworkError, NetworkSet } from '../../../src/policy/networks.ts';

describe('NetworkSet', () => {
  it('contains IPv4 addresses inside its CIDRs and nothing else', () => {
    const set = new NetworkSet(['10.0.0.0/8', '192.168.1.0/24']);
    expect(set.contains('10.200.3.4')).toBe(true);
    expect(set.contains('192.168.1.77')).toBe(true);
    expect(set.contains('192.168.2.1')).toBe(false);
    expect(set.contains('11.0.0.1')).toBe(false);
  });

  it('contains IPv6 addresses inside its IPv6 CIDRs', () => {
    const set = new NetworkSet(['2001:db8::/32']);
    expect(set.contains('2001:db8:ffff::1')).toBe(true);
    expect(set.contains('2001:db9::1')).toBe(false);
    expect(set.contains('10.0.0.1')).toBe(false);
  });

  it('treats an IPv4-mapped IPv6 peer as its IPv4 address', () => {
    const set = new NetworkSet(['10.0.0.0/8']);
    expect(set.contains('::ffff:10.1.2.3')).toBe(true);
    expect(set.contains('::ffff:11.1.2.3')).toBe(false);
  });

  it('accepts an IPv4-mapped CIDR and matches plain IPv4 peers with it', () => {
    const set = new NetworkSet(['::ffff:10.0.0.0/104']);
    expect(set.contains('10.9.9.9')).toBe(true);
    expect(set.contains('12.0.0.1')).toBe(false);
  });

  it('takes a bare address as a single host', () => {
    const set = new NetworkSet(['203.0.113.5', '::1']);
    expect(set.contains('203.0.113.5')).toBe(true);
    expect(set.contains('203.0.113.6')).toBe(false);
    expect(set.contains('::1')).toBe(true);
  });

  it('reads "!" as "not in": a negated entry alone contains everything outside it', () => {
    const set = new NetworkSet(['!10.0.0.0/8']);
    expect(set.contains('10.1.1.1')).toBe(false);
    expect(set.contains('8.8.8.8')).toBe(true);
    expect(set.contains('2001:db8::1')).toBe(true);
  });

  it('excludes negated entries from positive ones', () => {
    const set = new NetworkSet(['10.0.0.0/8', '!10.1.0.0/16']);
    expect(set.contains('10.2.0.1')).toBe(true);
    expect(set.contains('10.1.0.1')).toBe(false);
    expect(set.contains('9.0.0.1')).toBe(false);
  });

  it('contains nothing when empty, and never something that is not an IP', () => {
    expect(new NetworkSet([]).contains('127.0.0.1')).toBe(false);
    expect(new NetworkSet(['0.0.0.0/0']).contains('not-an-ip')).toBe(false);
    expect(new NetworkSet(['!10.0.0.0/8']).contains('')).toBe(false);
  });

  it('rejects a malformed CIDR with a NetworkError', () => {
    expect(() => new NetworkSet(['10.0.0.0/33'])).toThrow(NetworkError);
    expect(() => new NetworkSet(['banana'])).toThrow(NetworkError);
    expect(() => new NetworkSet(['!'])).toThrow(NetworkError);
  });
});

describe('clientKey', () => {
  it('keeps IPv4 addresses as they are', () => {
    expect(clientKey('198.51.100.7', 64)).toBe('198.51.100.7');
  });

  it('masks IPv6 addresses to the prefix so one /64 is one client', () => {
    expect(clientKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd', 64)).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:2::9', 64)).toBe(clientKey('2001:db8:1:2:ffff::1', 64));
    expect(clientKey('2001:db8:1:3::9', 64)).not.toBe(clientKey('2001:db8:1:2::9', 64));
  });

  it('honours other prefix lengths', () => {
    expect(clientKey('2001:db8:1:2::9', 48)).toBe('2001:db8:1::/48');
    expect(clientKey('2001:db8:1:2::9', 128)).toBe('2001:db8:1:2::9/128');
  });

  it('folds IPv4-mapped IPv6 to the IPv4 address', () => {
    expect(clientKey('::ffff:198.51.100.7', 64)).toBe('198.51.100.7');
  });

  it('drops an IPv6 zone id', () => {
    expect(clientKey('fe80::1%eth0', 64)).toBe('fe80::/64');
  });

  it('returns something that is not an IP unchanged', () => {
    expect(clientKey('/run/pop3.sock', 64)).toBe('/run/pop3.sock');
  });
});

describe('isLoopbackHost', () => {
  it('knows loopback addresses and localhost', () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('127.8.0.1')).toBe(true);
    expect(isLoopbackHost('::1')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('0.0.0.0')).toBe(false);
    expect(isLoopbackHost('10.0.0.1')).toBe(false);
  });
});
