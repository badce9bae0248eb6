/**
 * Relayed SASL through the gateway to a real Dovecot (issue 9 item 4): CRAM-MD5 and SCRAM are
 * relayed because the gateway reads the user from the client's first message, charges that user
 * and the source, and only then forwards it; the session, the audit and the rules know the user.
 * A mechanism whose user the gateway cannot read (DIGEST-MD5 here) is neither offered nor accepted.
 * The client side is computed here (CRAM-MD5 with python3's hmac, SCRAM with node:crypto), independently
 * of the gateway's code.
 */
import { execFileSync } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { DOVECOT_NO_AUTH_PENALTY, eventually, fromIp } from './policy-helpers.ts';

const AUTH_FAILED = '-ERR [AUTH] Authentication failed.';
const b64 = (s: string | Buffer): string => Buffer.from(s as string).toString('base64');
const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');

const PY_CRAM_MD5 = 'import base64, hashlib, hmac, sys; print(hmac.new(sys.argv[1].encode(), base64.b64decode(sys.argv[2]), hashlib.md5).hexdigest())';

async function connect(port: number, ip: string): Promise<Pop3TestClient> {
  return Pop3TestClient.connect({ port, tls: true, localAddress: ip, timeoutMs: 8000 });
}

/** AUTH CRAM-MD5 (RFC 2195); returns the final reply. */
async function cramMd5(c: Pop3TestClient, user: string, password: string): Promise<string> {
  const challenge = await c.command('AUTH CRAM-MD5');
  expect(challenge).toMatch(/^\+ /);
  // The digest from Python's hmac, a client implementation independent of Node and of the gateway.
  const digest = execFileSync('python3', ['-c', PY_CRAM_MD5, password, challenge.slice(2)], { encoding: 'utf8' }).trim();
  expect(digest).toBe(createHmac('md5', password).update(Buffer.from(challenge.slice(2), 'base64')).digest('hex'));
  return c.command(b64(`${user} ${digest}`));
}

/** AUTH SCRAM-SHA-1/-256 (RFC 5802), with or without an initial response; returns the final reply. */
async function scram(c: Pop3TestClient, hash: 'sha1' | 'sha256', user: string, password: string, initial: boolean): Promise<string> {
  const mech = hash === 'sha1' ? 'SCRAM-SHA-1' : 'SCRAM-SHA-256';
  const nonce = randomBytes(18).toString('base64');
  const bare = `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${nonce}`;
  const first = b64(`n,,${bare}`);
  let line = initial ? await c.command(`AUTH ${mech} ${first}`) : await c.command(`AUTH ${mech}`);
  if (!initial) {
    expect(line).toBe('+ ');
    line = await c.command(first);
  }
  if (!line.startsWith('+ ')) return line;
  const serverFirst = unb64(line.slice(2));
  const attrs = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
  const salted = pbkdf2Sync(password, Buffer.from(attrs.s!, 'base64'), Number(attrs.i), hash === 'sha1' ? 20 : 32, hash);
  const clientKey = createHmac(hash, salted).update('Client Key').digest();
  const storedKey = createHash(hash).update(clientKey).digest();
  const withoutProof = `c=biws,r=${attrs.r}`;
  const signature = createHmac(hash, storedKey).update(`${bare},${serverFirst},${withoutProof}`).digest();
  const proof = Buffer.from(clientKey.map((byte, i) => byte ^ signature[i]!));
  line = await c.command(b64(`${withoutProof},p=${proof.toString('base64')}`));
  // Dovecot sends the server signature as a last challenge and wants an empty response.
  if (line.startsWith('+ ')) line = await c.command('');
  return line;
}

describe('relayed SASL with a known user, against a real Dovecot', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;
  const pop3s = () => gw.port.pop3s!;
  const logins = (ip: string) => fromIp(gw.auditLines(), ip).filter((l) => l.event === 'login');

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: ['saslie', 'other', 'locky'].map((name) => ({ name, password: `${name}-secret` })),
      extraConfig: `auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256 digest-md5\n${DOVECOT_NO_AUTH_PENALTY}`,
    });
    for (const u of ['saslie', 'other', 'locky']) dovecot.addMessage(u, `Subject: for ${u}\r\n\r\nhello\r\n`);
    gw = await startTestGateway(dovecot.port, {
      policy: {
        auth: { maxFailuresPerIp: 100, maxFailuresPerUser: 3, window: '60s', lockout: '60s', failureDelay: '100ms' },
        rules: [{ match: { user: 'saslie' }, deny: ['DELE'] }],
      },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('offers PLAIN, LOGIN and the relayable mechanisms only, and refuses another with -ERR', async () => {
    const c = await connect(pop3s(), '127.0.0.101');
    const capa = await c.multiline('CAPA');
    const sasl = capa.body!.toString('latin1').split('\r\n').find((l) => l.startsWith('SASL'));
    expect(sasl).toBe('SASL PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256');
    const list = await c.multiline('AUTH');
    expect(list.body!.toString('latin1').trim().split('\r\n')).toEqual(['PLAIN', 'LOGIN', 'CRAM-MD5', 'SCRAM-SHA-1', 'SCRAM-SHA-256']);
    expect(await c.command('AUTH DIGEST-MD5')).toBe('-ERR Unsupported authentication mechanism.');
    expect(await c.command('AUTH GSSAPI')).toBe('-ERR Unsupported authentication mechanism.');
    await c.quit();
  });

  it('logs in with CRAM-MD5 as the user in the response: the audit names it and its DELE rule applies', async () => {
    const c = await connect(pop3s(), '127.0.0.102');
    expect(await cramMd5(c, 'saslie', 'saslie-secret')).toMatch(/^\+OK/);
    expect(await c.command('DELE 1')).toMatch(/^-ERR/);
    expect((await c.multiline('RETR 1')).body!.toString()).toContain('for saslie');
    await c.quit();
    await eventually(() => logins('127.0.0.102').length === 1, 'the login record');
    expect(logins('127.0.0.102')[0]).toMatchObject({ result: 'ok', user: 'saslie', mechanism: 'CRAM-MD5' });
    expect(gw.auditLines().some((l) => l.user === 'unknown')).toBe(false);
  });

  it('logs in with SCRAM-SHA-256 and SCRAM-SHA-1, with and without an initial response, as the user in n=', async () => {
    for (const [i, [hash, initial]] of ([['sha256', false], ['sha256', true], ['sha1', false]] as const).entries()) {
      const ip = `127.0.0.${103 + i}`;
      const c = await connect(pop3s(), ip);
      expect(await scram(c, hash, 'saslie', 'saslie-secret', initial)).toMatch(/^\+OK/);
      expect(await c.command('DELE 1')).toMatch(/^-ERR/);
      await c.quit();
      await eventually(() => logins(ip).length === 1, 'the login record');
      expect(logins(ip)[0]).toMatchObject({ result: 'ok', user: 'saslie' });
    }
  });

  it('counts relayed-SASL failures against that user only, and refuses its right password once it is locked', async () => {
    for (let i = 0; i < 3; i++) {
      const c = await connect(pop3s(), `127.0.0.${110 + i}`);
      const reply = i === 1 ? await scram(c, 'sha256', 'locky', 'wrong', false) : await cramMd5(c, 'locky', `wrong-${i}`);
      expect(reply).toBe(AUTH_FAILED);
      await c.quit();
    }
    await eventually(() => logins('127.0.0.112').length === 1, 'the third failure audited');
    for (const ip of ['127.0.0.110', '127.0.0.111', '127.0.0.112']) expect(logins(ip)[0]).toMatchObject({ result: 'err', user: 'locky' });
    // locky is locked: the right password, by CRAM-MD5 from a fresh address, never reaches Dovecot.
    const c = await connect(pop3s(), '127.0.0.113');
    expect(await cramMd5(c, 'locky', 'locky-secret')).toBe(AUTH_FAILED);
    // The same session may go on: another user from the same address is not affected.
    expect(await cramMd5(c, 'other', 'other-secret')).toMatch(/^\+OK/);
    await c.quit();
    await eventually(() => logins('127.0.0.113').length === 2, 'both attempts audited');
    expect(logins('127.0.0.113').map((l) => [l.result, l.user, l.reason])).toEqual([['denied', 'locky', 'user-locked'], ['ok', 'other', undefined]]);
  });

  it('refuses a CRAM-MD5 response without a readable user like a failed login, without forwarding it', async () => {
    const c = await connect(pop3s(), '127.0.0.120');
    expect(await c.command('AUTH CRAM-MD5')).toMatch(/^\+ /);
    expect(await c.command(b64('no-digest-here'))).toBe(AUTH_FAILED);
    await c.quit();
    await eventually(() => logins('127.0.0.120').length === 1, 'the refusal audited');
    expect(logins('127.0.0.120')[0]).toMatchObject({ result: 'err', reason: 'bad-credential-chars' });
  });
});
