/**
 * Per-user routing (`routes:`) across two real Dovecot instances with different users and
 * maildirs. Instance A is the default backend; instance B takes the users the rules name, by
 * exact name, `*@domain` (logging in as the local part), `user@host` and `user+host` (SDPS
 * style) and `/regex/`. Every login proves where it landed by the message it retrieves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForAudit } from '../harness/audit-wait.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('per-user routes to two Dovecot instances', () => {
  let a: DovecotInstance;
  let b: DovecotInstance;
  let gw: TestGateway;

  beforeAll(async () => {
    // A offers APOP: its greeting has a timestamp, which routing mode must still not pass on.
    a = await startDovecot({ apop: true });
    b = await startDovecot({
      users: [
        { name: 'carol', password: 'carol-secret' },
        { name: 'dave', password: 'dave-secret' },
        { name: 'erin', password: 'erin-secret' },
        { name: 'frank+oldhost', password: 'frank-secret' },
        { name: 'legacy-gina', password: 'gina-secret' },
        // Another alice with another password: a login that went to B by mistake would fail.
        { name: 'alice', password: 'alice-at-b' },
      ],
      // Dovecot refuses '+' in user names by default.
      extraConfig: 'auth_username_chars = abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@+',
    });
    a.addMessage('alice', 'Subject: a\r\n\r\nalice on instance A\r\n');
    a.addMessage('bob', 'Subject: a\r\n\r\nbob on instance A\r\n');
    for (const user of ['carol', 'dave', 'erin', 'frank+oldhost', 'legacy-gina', 'alice']) {
      b.addMessage(user, `Subject: b\r\n\r\n${user} on instance B\r\n`);
    }
    const toB = { host: '127.0.0.1', port: b.port };
    gw = await startTestGateway(a.port, {
      routes: [
        { match: 'dave', backend: toB },
        { match: '*@legacy.example.org', backend: toB, loginAs: 'local-part' },
        { match: 'erin@oldhost', backend: toB, loginAs: 'local-part' },
        { match: 'frank+oldhost', backend: toB },
        { match: '/^legacy-[a-z]+$/', backend: toB },
      ],
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await b?.stop();
    await a?.stop();
  });

  async function firstMessage(client: Pop3TestClient): Promise<string> {
    const retr = await client.multiline('RETR 1');
    expect(retr.status).toMatch(/^\+OK/);
    return retr.body!.toString('latin1');
  }

  it.each([
    ['an exact name', 'dave', 'dave-secret', 'dave on instance B'],
    ['*@domain, logging in with the local part', 'carol@legacy.example.org', 'carol-secret', 'carol on instance B'],
    ['user@host (SDPS style), logging in with the local part', 'erin@oldhost', 'erin-secret', 'erin on instance B'],
    ['user+host (SDPS style)', 'frank+oldhost', 'frank-secret', 'frank+oldhost on instance B'],
    ['a /regex/', 'legacy-gina', 'gina-secret', 'legacy-gina on instance B'],
    ['the default route when no rule matches', 'alice', 'alice-secret', 'alice on instance A'],
    ['the default route for a name close to a rule', 'bob', 'bob-secret', 'bob on instance A'],
  ])('routes a user matched by %s to the instance holding the mailbox (USER/PASS)', async (_what, user, password, text) => {
    const client = await Pop3TestClient.connect({ port: gw.port.plain! });
    await client.login(user, password);
    expect(await firstMessage(client)).toContain(text);
    await client.quit();
    // The audit names the user as the client gave it, whatever name the backend was sent.
    await waitForAudit(gw, (l) => l.event === 'login' && l.result === 'ok' && l.user === user);
  });

  it('sends only the local part to the routed backend with loginAs: local-part', async () => {
    // carol@legacy.example.org logged in above; B only knows "carol".
    expect(b.readLog()).toMatch(/Login: user=<carol>/);
    expect(b.readLog()).not.toMatch(/user=<carol@legacy\.example\.org>/);
    expect(a.readLog()).not.toMatch(/user=<carol/);
  });

  it('routes AUTH PLAIN with an initial response', async () => {
    const client = await Pop3TestClient.connect({ port: gw.port.plain! });
    expect(await client.command(`AUTH PLAIN ${b64('\0carol@legacy.example.org\0carol-secret')}`)).toMatch(/^\+OK/);
    expect(await firstMessage(client)).toContain('carol on instance B');
    await client.quit();
  });

  it('routes AUTH PLAIN without an initial response and AUTH LOGIN', async () => {
    const plain = await Pop3TestClient.connect({ port: gw.port.plain! });
    expect(await plain.command('AUTH PLAIN')).toMatch(/^\+ ?$/);
    expect(await plain.command(b64('\0legacy-gina\0gina-secret'))).toMatch(/^\+OK/);
    expect(await firstMessage(plain)).toContain('legacy-gina on instance B');
    await plain.quit();

    const login = await Pop3TestClient.connect({ port: gw.port.plain! });
    expect(await login.command('AUTH LOGIN')).toMatch(/^\+ /);
    expect(await login.command(b64('dave'))).toMatch(/^\+ /);
    expect(await login.command(b64('dave-secret'))).toMatch(/^\+OK/);
    expect(await firstMessage(login)).toContain('dave on instance B');
    await login.quit();

    const defaultRoute = await Pop3TestClient.connect({ port: gw.port.plain! });
    expect(await defaultRoute.command('AUTH LOGIN')).toMatch(/^\+ /);
    expect(await defaultRoute.command(b64('alice'))).toMatch(/^\+ /);
    expect(await defaultRoute.command(b64('alice-secret'))).toMatch(/^\+OK/);
    expect(await firstMessage(defaultRoute)).toContain('alice on instance A');
    await defaultRoute.quit();
  });

  it('does not offer APOP in routing mode: no timestamp in the greeting and APOP refused', async () => {
    const client = await Pop3TestClient.connect({ port: gw.port.plain! });
    expect(client.greeting).toMatch(/^\+OK/);
    expect(client.greeting).not.toMatch(/<[^>]*@[^>]*>/);
    const capa = await client.multiline('CAPA');
    expect(capa.body!.toString('latin1')).not.toMatch(/APOP/);
    expect(await client.command('APOP alice 0123456789abcdef0123456789abcdef')).toMatch(/^-ERR/);
    // The session goes on.
    await client.login('alice', 'alice-secret');
    expect(await firstMessage(client)).toContain('alice on instance A');
    await client.quit();
  });

  it('routes the next user to the right backend after a failed login on another route', async () => {
    const first = await Pop3TestClient.connect({ port: gw.port.plain! });
    await first.ok('USER carol@legacy.example.org');
    expect(await first.command('PASS wrong')).toBe('-ERR [AUTH] Authentication failed.');
    await first.login('alice', 'alice-secret');
    expect(await firstMessage(first)).toContain('alice on instance A');
    await first.quit();

    // Dovecot B now delays logins from the gateway's address for a few seconds (its auth
    // penalty for the failure above: every session reaches it from 127.0.0.1).
    const second = await Pop3TestClient.connect({ port: gw.port.plain!, timeoutMs: 10_000 });
    await second.ok('USER alice');
    expect(await second.command('PASS carol-secret')).toBe('-ERR [AUTH] Authentication failed.');
    await second.login('carol@legacy.example.org', 'carol-secret');
    expect(await firstMessage(second)).toContain('carol on instance B');
    await second.quit();

    // Each failure was decided by the instance the name routes to.
    expect(b.readLog()).toMatch(/passwd-file\(carol,.*Password mismatch/);
    expect(a.readLog()).toMatch(/passwd-file\(alice,.*Password mismatch/);
    expect(a.readLog()).not.toMatch(/\(carol/);
  });
});
