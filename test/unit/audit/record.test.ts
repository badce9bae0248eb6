import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AuditChain } from '../../../src/audit/chain.ts';
import {
  commandRecord,
  connectRecord,
  disconnectRecord,
  loginRecord,
  logoutRecord,
  policyRecord,
  signalRecord,
  type SessionContext,
} from '../../../src/audit/record.ts';

const ctx: SessionContext = { session: 's1', listener: 'pop3s', client: '192.0.2.7:51000', tls: 'TLSv1.3', user: 'alice' };

describe('audit records', () => {
  it('a connect record carries the session context and no user before one is known', () => {
    const { user: _user, ...anon } = ctx;
    expect(connectRecord(anon)).toEqual({ session: 's1', listener: 'pop3s', client: '192.0.2.7:51000', tls: 'TLSv1.3', event: 'connect' });
  });

  it('PASS keeps the verb and drops its argument', () => {
    const r = commandRecord(ctx, 'PASS', ['hunter2'], 'ok');
    expect(r.command).toBe('PASS');
    expect(r.args).toBeUndefined();
    expect(JSON.stringify(r)).not.toContain('hunter2');
  });

  it('APOP drops both the name and the digest', () => {
    const r = commandRecord(ctx, 'apop', ['alice', 'c4c9334bac560ecc979e58001b3e22fb'], 'err');
    expect(r.command).toBe('APOP');
    expect(JSON.stringify(r)).not.toContain('c4c9334bac560ecc979e58001b3e22fb');
  });

  it('AUTH keeps only the mechanism name, never the initial response', () => {
    const r = commandRecord(ctx, 'AUTH', ['plain', 'AGFsaWNlAGh1bnRlcjI='], 'ok');
    expect(r.mechanism).toBe('PLAIN');
    expect(r.args).toBeUndefined();
    expect(JSON.stringify(r)).not.toContain('AGFsaWNlAGh1bnRlcjI=');
  });

  it('AUTH with something that is not a mechanism name records INVALID', () => {
    expect(commandRecord(ctx, 'AUTH', ['pa$$word!'], 'err').mechanism).toBe('INVALID');
  });

  it('USER keeps the name and RETR keeps the message number, uid, size and octets', () => {
    expect(commandRecord(ctx, 'USER', ['alice'], 'ok').args).toBe('alice');
    const r = commandRecord(ctx, 'RETR', ['3'], 'ok', { uid: 'UID-3', size: 1200, octets: 1234 });
    expect(r).toMatchObject({ event: 'command', command: 'RETR', args: '3', msg: 3, uid: 'UID-3', size: 1200, octets: 1234 });
  });

  it('an unknown line that does not look like a verb is recorded as OTHER without arguments', () => {
    const r = commandRecord(ctx, 'CorrectHorseBattery', ['staple'], 'err');
    expect(r.command).toBe('OTHER');
    expect(JSON.stringify(r)).not.toMatch(/Horse|staple/i);
    expect(commandRecord(ctx, 'XTND', ['XMIT'], 'err')).toMatchObject({ command: 'XTND' });
  });

  it('long arguments are cut so a record stays one readable line', () => {
    const r = commandRecord(ctx, 'USER', ['x'.repeat(1000)], 'ok');
    expect(r.args!.length).toBeLessThanOrEqual(201);
  });

  it('a login record carries result, reason and mechanism', () => {
    expect(loginRecord(ctx, 'denied', { reason: 'user-locked', mechanism: 'plain' })).toMatchObject({
      event: 'login', result: 'denied', reason: 'user-locked', mechanism: 'PLAIN',
    });
  });

  it('a report-mode policy record says would-deny, an enforced one denied', () => {
    expect(policyRecord(ctx, 'rule-deny', { command: 'dele', mode: 'enforce' })).toMatchObject({ event: 'policy', result: 'denied', reason: 'rule-deny', command: 'DELE' });
    expect(policyRecord(ctx, 'max-bytes', { mode: 'report' }).result).toBe('would-deny');
  });

  it('a logout after a confirmed QUIT lists the deleted messages', () => {
    const r = logoutRecord(ctx, [{ msg: 1, uid: 'a', size: 10 }], [], true);
    expect(r).toMatchObject({ event: 'logout', result: 'ok', deleted: [{ msg: 1, uid: 'a', size: 10 }], notDeleted: [] });
  });

  it('a logout without a confirmed QUIT deletes nothing, whatever was marked', () => {
    const r = logoutRecord(ctx, [{ msg: 1, uid: 'a' }, { msg: 2, uid: 'b' }], [], false);
    expect(r.deleted).toEqual([]);
    expect(r.notDeleted).toEqual([{ msg: 1, uid: 'a' }, { msg: 2, uid: 'b' }]);
    expect(r).toMatchObject({ result: 'err', reason: 'quit-not-confirmed' });
  });

  it('a disconnect record carries bytes each way and a whole-ms duration', () => {
    expect(disconnectRecord(ctx, { bytesIn: 10, bytesOut: 2000, durationMs: 1500.4, reason: 'quit' })).toMatchObject({
      event: 'disconnect', bytesIn: 10, bytesOut: 2000, durationMs: 1500, reason: 'quit',
    });
  });

  it('a signal record copies the signal and its detail', () => {
    const r = signalRecord(ctx, { signal: 'mass-dele', detail: { deles: 100 } });
    expect(r).toMatchObject({ event: 'signal', signal: 'mass-dele', detail: { deles: 100 } });
  });

  it('no random password ever appears in a sealed PASS, APOP or AUTH line', () => {
    const reference = new AuditChain().seal({ time: '2024-05-01T00:00:00.000Z', ...commandRecord(ctx, 'NOOP', [], 'ok') });
    fc.assert(
      fc.property(fc.string({ minLength: 6, maxLength: 64 }), fc.constantFrom('PASS', 'APOP', 'AUTH'), (secret, verb) => {
        // A "password" that is part of every record anyway (e.g. "pop3s") proves nothing.
        fc.pre(!reference.includes(secret) && !reference.includes(JSON.stringify(secret).slice(1, -1)));
        const args = verb === 'PASS' ? [secret] : verb === 'APOP' ? ['alice', secret] : ['PLAIN', secret];
        const line = new AuditChain().seal({ time: '2024-05-01T00:00:00.000Z', ...commandRecord(ctx, verb, args, 'err') });
        return !line.includes(secret) && !line.includes(JSON.stringify(secret).slice(1, -1));
      }),
      { numRuns: 500 },
    );
  });
});
