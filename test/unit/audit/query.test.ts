import { describe, expect, it } from 'vitest';
import { pseudonymizer } from '../../../src/audit/pseudonymize.ts';
import {
  clientIp, escapeForTerminal, filterRecords, formatBytes, formatTable, parseRecordLine, parseSince, type AuditRecord,
} from '../../../src/audit/query.ts';

const NOW = Date.parse('2024-05-02T12:00:00Z');
const base = { session: 's1', listener: 'pop3s', tls: 'TLSv1.3' as const };

const records: AuditRecord[] = [
  { ...base, time: '2024-05-01T10:00:00.000Z', event: 'connect', client: '192.0.2.7:51000' },
  { ...base, time: '2024-05-02T10:00:00.000Z', event: 'login', client: '192.0.2.7:51000', user: 'alice', result: 'ok', mechanism: 'PLAIN' },
  { ...base, time: '2024-05-02T10:00:01.000Z', event: 'command', client: '192.0.2.7:51000', user: 'alice', command: 'RETR', args: '1', msg: 1, uid: 'UID-A', size: 1200, octets: 1234, result: 'ok', headers: { Subject: 'Hello' } },
  { ...base, time: '2024-05-02T10:00:02.000Z', event: 'policy', client: '192.0.2.7:51000', user: 'alice', command: 'DELE', result: 'denied', reason: 'rule-deny' },
  { ...base, time: '2024-05-02T10:00:03.000Z', event: 'logout', client: '192.0.2.7:51000', user: 'alice', result: 'ok', deleted: [{ msg: 2, uid: 'UID-B' }], notDeleted: [] },
  { ...base, session: 's2', time: '2024-05-02T11:00:00.000Z', event: 'login', client: '[2001:db8::5]:40000', user: 'bob', result: 'err', reason: 'bad-credentials' },
  { ...base, session: 's2', time: '2024-05-02T11:00:01.000Z', event: 'disconnect', client: '[2001:db8::5]:40000', user: 'bob', bytesIn: 40, bytesOut: 3 * 1024 * 1024, durationMs: 2500 },
  { ...base, session: 's3', time: '2024-05-02T11:30:00.000Z', event: 'signal', client: '203.0.113.1:1', signal: 'many-users-one-source', detail: { source: '203.0.113.1', count: 2, users: ['alice', 'carol'] } },
];

describe('audit query', () => {
  it('parses relative durations and ISO dates for --since', () => {
    expect(parseSince('24h', NOW)).toBe(NOW - 86_400_000);
    expect(parseSince('1h30m', NOW)).toBe(NOW - 5_400_000);
    expect(parseSince('7d', NOW)).toBe(NOW - 7 * 86_400_000);
    expect(parseSince('2w', NOW)).toBe(NOW - 14 * 86_400_000);
    expect(parseSince('2024-05-01', NOW)).toBe(Date.parse('2024-05-01T00:00:00Z'));
    expect(parseSince('2024-05-01T12:00:00Z', NOW)).toBe(Date.parse('2024-05-01T12:00:00Z'));
    expect(parseSince('2024-05-01 12:00:00+02:00', NOW)).toBe(Date.parse('2024-05-01T10:00:00Z'));
  });

  it('rejects what is neither a duration nor a date', () => {
    for (const bad of ['yesterday', '24', '1y', '', '2024-13-45', 'May 1']) expect(parseSince(bad, NOW)).toBeNull();
  });

  it('filters by user, including users named inside a signal', () => {
    expect(filterRecords(records, { user: 'alice' }).map((r) => r.event)).toEqual(['login', 'command', 'policy', 'logout', 'signal']);
    expect(filterRecords(records, { user: 'nobody' })).toEqual([]);
  });

  it('a USER command matches its argument even before the session knows the user', () => {
    const early: AuditRecord = { ...base, time: '2024-05-02T09:59:59.000Z', event: 'command', client: '192.0.2.7:51000', command: 'USER', args: 'alice', result: 'ok' };
    expect(filterRecords([early], { user: 'alice' })).toHaveLength(1);
    expect(filterRecords([{ ...early, command: 'NOOP' }], { user: 'alice' })).toHaveLength(0);
  });

  it('filters by time window', () => {
    const since = parseSince('24h', NOW)!;
    expect(filterRecords(records, { since }).some((r) => r.event === 'connect')).toBe(false);
    expect(filterRecords(records, { until: Date.parse('2024-05-02T00:00:00Z') }).map((r) => r.event)).toEqual(['connect']);
  });

  it('filters by address or range, IPv4 and IPv6', () => {
    expect(filterRecords(records, { ip: '192.0.2.7' })).toHaveLength(5);
    expect(filterRecords(records, { ip: '192.0.2.0/24' })).toHaveLength(5);
    expect(filterRecords(records, { ip: '2001:db8::/32' }).map((r) => r.user)).toEqual(['bob', 'bob']);
    expect(() => filterRecords(records, { ip: 'not-an-ip' })).toThrow(RangeError);
  });

  it('filters by event list and by uid, including uids of deleted messages', () => {
    expect(filterRecords(records, { event: ['login', 'logout'] })).toHaveLength(3);
    expect(filterRecords(records, { uid: 'UID-A' }).map((r) => r.command)).toEqual(['RETR']);
    expect(filterRecords(records, { uid: 'UID-B' }).map((r) => r.event)).toEqual(['logout']);
  });

  it('with pseudonymization, --user finds the hashed name', () => {
    const p = pseudonymizer('k');
    const hashed = records.map((r) => ({
      ...r,
      ...(r.user ? { user: p(r.user) } : {}),
      ...(r.detail ? { detail: { ...r.detail, users: (r.detail.users as string[]).map(p) } } : {}),
    }));
    expect(filterRecords(hashed, { user: 'alice' })).toHaveLength(0);
    expect(filterRecords(hashed, { user: 'alice', pseudonymize: p })).toHaveLength(5);
    expect(filterRecords(hashed, { user: p('bob') })).toHaveLength(2);
  });

  it('splits ip:port for IPv4, bracketed and bare IPv6', () => {
    expect(clientIp('192.0.2.7:51000')).toBe('192.0.2.7');
    expect(clientIp('[2001:db8::5]:40000')).toBe('2001:db8::5');
    expect(clientIp('::1:40000')).toBe('::1');
  });

  it('skips lines that are blank or not JSON objects', () => {
    expect(parseRecordLine('')).toBeNull();
    expect(parseRecordLine('{"time":')).toBeNull();
    expect(parseRecordLine('[1,2]')).toBeNull();
    expect(parseRecordLine('{"event":"connect"}')).toEqual({ event: 'connect' });
  });

  it('prints an aligned table with a header and one row per record', () => {
    const out = formatTable(records);
    const lines = out.trimEnd().split('\n');
    expect(lines).toHaveLength(records.length + 1);
    expect(lines[0]).toMatch(/^TIME \(UTC\)\s+EVENT\s+USER\s+CLIENT\s+WHAT\s+UID\s+RESULT\s+DETAIL$/);
    // Every column starts at the same offset in every row.
    const userCol = lines[0]!.indexOf('USER');
    for (const l of lines.slice(1)) expect(l[userCol - 1]).toBe(' ');
    expect(lines[3]).toContain('RETR 1');
    expect(lines[3]).toContain('UID-A');
    expect(lines[3]).toContain('1.2 KiB');
    expect(lines[3]).toContain('Subject: Hello');
    expect(lines[3]).toMatch(/^2024-05-02 10:00:01 /);
    expect(lines[4]).toContain('rule-deny');
    expect(lines[5]).toContain('deleted 1');
    expect(lines[5]).toContain('UID-B');
    expect(lines[7]).toContain('in 40 B, out 3.0 MiB');
    expect(lines[7]).toContain('after 2.5s');
    expect(lines[8]).toContain('many-users-one-source');
  });

  it('cuts cells that are too long and keeps control characters out of the table', () => {
    const long: AuditRecord = { ...base, time: '2024-05-02T10:00:00Z', event: 'command', client: '1.2.3.4:5', user: 'u'.repeat(100), command: 'USER', args: 'x', result: 'ok', headers: { Subject: 'a\nb' } };
    const row = formatTable([long]).split('\n')[1]!;
    expect(row).toContain(`${'u'.repeat(31)}…`);
    expect(row).not.toContain('u'.repeat(33));
    expect(formatTable([long]).trimEnd().split('\n')).toHaveLength(2);
  });

  it('formats byte counts in binary units', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(200 * 1024 * 1024)).toBe('200 MiB');
  });
});

describe('terminal escaping of table cells', () => {
  it.each([
    ['\u0000\u0007\u001b[2J\t\r\n', '\\x00\\x07\\x1b[2J\\x09\\x0d\\x0a'],
    ['a\u007fb', 'a\\x7fb'],
    ['\u0080\u009b31m\u009f', '\\x80\\x9b31m\\x9f'],
    ['\u200e\u200f\u202a\u202b\u202c\u202d\u202e', '\\u{200e}\\u{200f}\\u{202a}\\u{202b}\\u{202c}\\u{202d}\\u{202e}'],
    ['\u2066\u2067\u2068\u2069\u061c', '\\u{2066}\\u{2067}\\u{2068}\\u{2069}\\u{61c}'],
    ['\u2028\u2029', '\\u{2028}\\u{2029}'],
    ['\u200b\ufeff\u00ad\u{e0001}', '\\u{200b}\\u{feff}\\xad\\u{e0001}'],
    ['\ud800x', '\\u{d800}x'],
    ['back\\slash', 'back\\\\slash'],
  ])('escapes %j', (input, out) => {
    expect(escapeForTerminal(input)).toBe(out);
  });

  it('leaves printable text, accents and emoji as they are', () => {
    expect(escapeForTerminal('josé@exämple.org 日本 🙂 ~!')).toBe('josé@exämple.org 日本 🙂 ~!');
  });

  it('shows no raw control or bidi character in any table cell', () => {
    const hostile: AuditRecord = {
      time: '2024-05-01T10:00:00.000Z', event: 'login', user: 'evil\u009b2J\u202egnp.exe', client: '192.0.2.1:5', result: 'err',
      reason: 'bad\u2066password\u0085', headers: { Subject: '\u001b]0;pwned\u0007' },
    } as AuditRecord;
    const out = formatTable([hostile]);
    // Only the row separators are control characters.
    expect(out.replace(/\n/g, '')).not.toMatch(/[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u);
    expect(out).toContain('evil\\x9b2J\\u{202e}gnp.exe');
  });
});
