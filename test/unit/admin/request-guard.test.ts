import { describe, expect, it } from 'vitest';
import { RequestGuard, splitHostPort } from '../../../src/admin/request-guard.ts';

const JSON_TYPE = { 'content-type': 'application/json' };

describe('admin request guard', () => {
  it('on a loopback bind accepts its own address, localhost, 127.0.0.1 and [::1], any port, any case', () => {
    const g = new RequestGuard('127.0.0.1', []);
    for (const host of ['127.0.0.1:9110', '127.0.0.1', 'localhost:9110', 'LocalHost', 'localhost.', '[::1]:9110', '[::1]']) {
      expect(g.check('GET', { host }), host).toEqual({ ok: true });
    }
  });

  it('refuses any other name with 421, including names that merely start like an allowed one', () => {
    const g = new RequestGuard('127.0.0.1', ['admin.example.org']);
    for (const host of ['attacker.example', 'attacker.example:9110', 'localhost.attacker.example', '127.0.0.1.nip.io', '10.0.0.1',
      'admin.example.org.evil', '', 'a b', '[::1', 'x:y:z']) {
      expect(g.check('GET', { host }), host).toMatchObject({ ok: false, status: 421 });
    }
    expect(g.check('GET', { host: 'Admin.Example.Org:9110' })).toEqual({ ok: true });
  });

  it('on a non-loopback address accepts that address and the allowed names, not localhost', () => {
    const g = new RequestGuard('10.0.0.5', ['mon.example.org']);
    expect(g.check('GET', { host: '10.0.0.5:9110' }).ok).toBe(true);
    expect(g.check('GET', { host: 'mon.example.org' }).ok).toBe(true);
    expect(g.check('GET', { host: 'localhost:9110' }).ok).toBe(false);
  });

  it('on a wildcard bind accepts address literals and loopback names, but only listed names', () => {
    const g = new RequestGuard('0.0.0.0', ['mon.example.org']);
    for (const host of ['10.1.2.3:9110', '[2001:db8::1]:9110', 'localhost', 'mon.example.org']) expect(g.check('GET', { host }).ok, host).toBe(true);
    expect(g.check('GET', { host: 'attacker.example' }).ok).toBe(false);
  });

  it('accepts a request without Host (not a browser) and without Origin', () => {
    expect(new RequestGuard('127.0.0.1', []).check('GET', {})).toEqual({ ok: true });
  });

  it('refuses a foreign, null or mismatched Origin with 403 and accepts its own', () => {
    const g = new RequestGuard('127.0.0.1', []);
    const host = '127.0.0.1:9110';
    for (const origin of ['http://attacker.example', 'null', 'http://127.0.0.1:9111', 'http://localhost:9110', 'file://', 'ftp://127.0.0.1:9110']) {
      expect(g.check('GET', { host, origin }), origin).toMatchObject({ ok: false, status: 403 });
    }
    expect(g.check('GET', { host, origin: 'http://127.0.0.1:9110' })).toEqual({ ok: true });
    expect(g.check('GET', { host: 'localhost:80', origin: 'http://localhost' })).toEqual({ ok: true });
    expect(g.check('GET', { origin: 'http://127.0.0.1:9110' })).toMatchObject({ ok: false, status: 403 });
  });

  it('refuses a POST a cross-site form could send (415) and accepts JSON or the custom header', () => {
    const g = new RequestGuard('127.0.0.1', []);
    const host = '127.0.0.1:9110';
    for (const type of [undefined, 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'text/plain', 'application/jsonx']) {
      expect(g.check('POST', { host, 'content-type': type }), String(type)).toMatchObject({ ok: false, status: 415 });
    }
    expect(g.check('POST', { host, ...JSON_TYPE })).toEqual({ ok: true });
    expect(g.check('POST', { host, 'content-type': 'Application/JSON; charset=utf-8' })).toEqual({ ok: true });
    expect(g.check('POST', { host, 'x-pop3gw-admin': '1' })).toEqual({ ok: true });
    expect(g.check('GET', { host })).toEqual({ ok: true });
  });

  it('splits host and port, IPv6 in brackets', () => {
    expect(splitHostPort('a.example:80')).toBe('a.example');
    expect(splitHostPort('[::1]:9110')).toBe('::1');
    expect(splitHostPort('::1')).toBeNull();
    expect(splitHostPort('a:99999999')).toBeNull();
  });
});
