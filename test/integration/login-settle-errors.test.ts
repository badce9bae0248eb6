/**
 * A successful login settles its lockout charge (the points given back, the pair marked known
 * good) after the client has its +OK. If the counter store fails there, synchronously (the
 * memory store answers at once) or with a rejection (Redis, the cluster primary), the session
 * goes on and the failure is logged as `counter-error`: the login is neither refused nor
 * crashed. Real Dovecot behind the gateway; the session's limiter is reached through the
 * registry, as in session-end.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuthLimiter } from '../../src/policy/auth-limits.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

describe('a login whose settlement fails', () => {
  let dc: DovecotInstance;
  let gw: TestGateway;
  let failure: 'throw' | 'reject' | null = null;

  beforeAll(async () => {
    dc = await startDovecot();
    dc.addMessage('bob', 'Subject: hi\r\n\r\nHello.\r\n');
    gw = await startTestGateway(dc.port);
    const registry = gw.gw.registry as unknown as { add(s: { deps: { auth: AuthLimiter } }): void };
    const add = registry.add.bind(registry);
    registry.add = (s) => {
      const auth = s.deps.auth;
      const succeeded = auth.succeeded.bind(auth);
      // Per instance, once: every session of this config shares the limiter.
      if (!Object.hasOwn(auth, 'succeeded')) {
        auth.succeeded = (t) => {
          if (failure === 'throw') throw new Error('store broke at once');
          if (failure === 'reject') return Promise.reject(new Error('store broke later'));
          return succeeded(t);
        };
      }
      add(s);
    };
  });

  afterAll(async () => {
    await gw?.stop();
    await dc?.stop();
  });

  for (const how of ['throw', 'reject'] as const) {
    it(`keeps the session and logs counter-error when the store fails (${how})`, async () => {
      failure = how;
      const before = gw.logs.find({ event: 'counter-error' }).length;
      const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
      await c.login('bob', 'bob-secret');
      expect(await c.command('STAT')).toMatch(/^\+OK 1 /);
      await c.quit();
      failure = null;
      const logged = gw.logs.find({ event: 'counter-error' });
      expect(logged.length).toBe(before + 1);
      expect(String(logged.at(-1)!.err)).toContain(how === 'throw' ? 'store broke at once' : 'store broke later');
    });
  }
});
