import { describe, expect, it } from 'vitest';
import { asBackendError, BackendError } from '../../../src/backend/errors.ts';
import { BackendPool } from '../../../src/backend/pool.ts';

const A = { host: '10.0.0.1', port: 110 };
const B = { host: '10.0.0.2', port: 110 };
const C = { host: '10.0.0.3', port: 110 };

function pool(downFor = 1000) {
  let now = 0;
  const p = new BackendPool([A, B, C], { downFor }, () => now);
  return { p, advance: (ms: number) => (now += ms) };
}

describe('BackendPool', () => {
  it('rotates the first server on each pick so load spreads', () => {
    const { p } = pool();
    expect(p.pick()).toEqual([A, B, C]);
    expect(p.pick()).toEqual([B, C, A]);
    expect(p.pick()).toEqual([C, A, B]);
    expect(p.pick()).toEqual([A, B, C]);
  });

  it('puts a server marked down after the healthy ones', () => {
    const { p } = pool();
    p.markDown(A);
    expect(p.isDown(A)).toBe(true);
    expect(p.pick()).toEqual([B, C, A]);
    expect(p.pick()).toEqual([B, C, A]);
    expect(p.pick()).toEqual([C, B, A]);
  });

  it('orders down servers by when they come back, soonest first', () => {
    const { p, advance } = pool();
    p.markDown(B);
    advance(100);
    p.markDown(A);
    p.markDown(C);
    expect(p.pick()).toEqual([B, A, C]);
  });

  it('tries a down server again once downFor has passed', () => {
    const { p, advance } = pool(1000);
    p.markDown(A);
    advance(999);
    expect(p.isDown(A)).toBe(true);
    advance(1);
    expect(p.isDown(A)).toBe(false);
    expect(p.pick()).toEqual([A, B, C]);
  });

  it('forgets a failure when the server is marked up', () => {
    const { p } = pool();
    p.markDown(B);
    p.markUp(B);
    expect(p.isDown(B)).toBe(false);
  });

  it('knows a server by host and port, not by object identity', () => {
    const { p } = pool();
    p.markDown({ host: '10.0.0.2', port: 110 });
    expect(p.isDown(B)).toBe(true);
    expect(p.isDown({ host: '10.0.0.2', port: 111 })).toBe(false);
  });

  it('refuses to be built without servers', () => {
    expect(() => new BackendPool([], { downFor: 1 })).toThrow(RangeError);
  });
});

describe('BackendError', () => {
  it.each([
    ['CONNECT', true], ['TIMEOUT', true], ['CLOSED', true],
    ['TLS', false], ['GREETING', false], ['NO_STLS', false], ['PROTOCOL', false], ['PLAINTEXT_CREDENTIALS', false],
  ] as const)('marks %s as retryable: %s', (code, retryable) => {
    expect(new BackendError(code, 'x').retryable).toBe(retryable);
  });

  it('names the server in its message and keeps the response code', () => {
    const err = new BackendError('GREETING', 'refused', { server: '10.0.0.1:110', responseCode: 'IN-USE' });
    expect(err.message).toBe('10.0.0.1:110: refused');
    expect(err).toMatchObject({ server: '10.0.0.1:110', responseCode: 'IN-USE', name: 'BackendError' });
  });

  it('turns anything unexpected into a PROTOCOL error that is not retried', () => {
    const err = asBackendError(new TypeError('boom'), 'h:1');
    expect(err).toMatchObject({ code: 'PROTOCOL', retryable: false, server: 'h:1' });
    expect(err.cause).toBeInstanceOf(TypeError);
    const same = new BackendError('TLS', 'x');
    expect(asBackendError(same)).toBe(same);
  });
});
