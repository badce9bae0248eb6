import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandRecord, connectRecord, loginRecord, logoutRecord, type SessionContext } from '../../src/audit/record.ts';
import { createAuditSink } from '../../src/audit/sink.ts';
import { silentLogger } from '../../src/util/logger.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const KEY = 'test-audit-key';

interface Run { code: number; stdout: string; stderr: string }

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    const { POP3GW_AUDIT_KEY: _drop, ...base } = process.env;
    execFile(process.execPath, ['--import', 'tsx', 'src/audit-cli.ts', ...args], { cwd: ROOT, env: { ...base, ...env }, timeout: 20_000 },
      (err, stdout, stderr) => done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

let dir: string;

/** Writes a session for `user` through the real sink, `hoursAgo` hours back. */
async function recordSessions(file: string, opts: { pseudonymize?: boolean } = {}) {
  let now = Date.now();
  const sink = await createAuditSink(
    { level: 'info', audit: file, auditHeaders: [], auditPseudonymize: opts.pseudonymize ?? false, auditMode: 0o640, format: 'json' },
    { key: opts.pseudonymize ? KEY : null, log: silentLogger, now: () => new Date(now) },
  );
  const session = (id: string, user: string, hoursAgo: number, port: number) => {
    now = Date.now() - hoursAgo * 3_600_000;
    const anon: SessionContext = { session: id, listener: 'pop3s', client: `192.0.2.${port % 200}:${port}`, tls: 'TLSv1.3' };
    const ctx = { ...anon, user };
    sink.write(connectRecord(anon));
    sink.write(commandRecord(ctx, 'PASS', ['never-logged-secret'], 'ok'));
    sink.write(loginRecord(ctx, 'ok', {}));
    sink.write(commandRecord(ctx, 'RETR', ['1'], 'ok', { uid: `${user}-uid-1`, size: 2048, octets: 2100, headers: { Subject: `for ${user}` } }));
    sink.write(commandRecord(ctx, 'DELE', ['1'], 'ok', { uid: `${user}-uid-1`, size: 2048 }));
    sink.write(logoutRecord(ctx, [{ msg: 1, uid: `${user}-uid-1`, size: 2048 }], [], true));
  };
  session('old-alice', 'alice', 72, 40001);
  session('s-alice', 'alice', 2, 40002);
  session('s-bob', 'bob', 1, 40003);
  await sink.close();
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pop3gw-audit-cli-'));
  await recordSessions(join(dir, 'audit.log'));
  await mkdir(join(dir, 'pseudo'));
  await recordSessions(join(dir, 'pseudo', 'audit.log'), { pseudonymize: true });
  await writeFile(join(dir, 'pseudo', 'gateway.yaml'), 'logging:\n  audit: audit.log\n  auditPseudonymize: true\n');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function variant(name: string, edit: (lines: string[]) => string[]): Promise<string> {
  const lines = (await readFile(join(dir, 'audit.log'), 'utf8')).trimEnd().split('\n');
  await mkdir(join(dir, name));
  const file = join(dir, name, 'audit.log');
  await writeFile(file, edit(lines).join('\n') + '\n');
  return file;
}

describe.concurrent('npm run audit', () => {
  it('prints a table of one user\'s records in the last 24 hours', async () => {
    const r = await cli(['--file', join(dir, 'audit.log'), '--user', 'alice', '--since', '24h']);
    expect(r.code).toBe(0);
    const rows = r.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^TIME \(UTC\)\s+EVENT\s+USER\s+CLIENT\s+WHAT\s+UID\s+RESULT\s+DETAIL$/);
    expect(rows).toHaveLength(1 + 5);
    expect(r.stdout).toContain('RETR 1');
    expect(r.stdout).toContain('alice-uid-1');
    expect(r.stdout).toContain('Subject: for alice');
    expect(r.stdout).toContain('deleted 1');
    expect(r.stdout).not.toContain('bob');
    expect(r.stdout).not.toContain('never-logged-secret');
    expect(r.stderr).toContain('5 records');
  });

  it('--json prints the matching records as JSON lines', async () => {
    const r = await cli(['--file', join(dir, 'audit.log'), '--event', 'command', '--uid', 'bob-uid-1', '--json']);
    expect(r.code).toBe(0);
    const recs = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(recs.map((x) => x.command)).toEqual(['RETR', 'DELE']);
    expect(recs.every((x) => x.user === 'bob' && typeof x.hash === 'string')).toBe(true);
  });

  it('--ip filters by client range and an empty result says so', async () => {
    const some = await cli(['--file', join(dir, 'audit.log'), '--ip', '192.0.2.0/24', '--event', 'login']);
    expect(some.stdout.trimEnd().split('\n')).toHaveLength(1 + 3);
    const none = await cli(['--file', join(dir, 'audit.log'), '--ip', '10.0.0.0/8']);
    expect(none.code).toBe(0);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain('no matching records');
  });

  it('--verify accepts an intact file', async () => {
    const r = await cli(['--file', join(dir, 'audit.log'), '--verify']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ok: 18 records verified \(seq 1–18\) in 1 file\n$/);
  });

  it('--verify names the line of an edited record', async () => {
    const file = await variant('edited', (l) => {
      l[9] = l[9]!.replace('"result":"ok"', '"result":"err"');
      return l;
    });
    const r = await cli(['--file', file, '--verify']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${file}:10 (seq 10): hash-mismatch`);
  });

  it('--verify names the line where a deleted record is missing', async () => {
    const file = await variant('deleted', (l) => l.filter((_, i) => i !== 4));
    const r = await cli(['--file', file, '--verify']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${file}:5 (seq 6): seq-gap`);
    expect(r.stdout).toContain('expected seq 5');
  });

  it('reads rotated files, gzip included, oldest first, and verifies across them', async () => {
    const lines = (await readFile(join(dir, 'audit.log'), 'utf8')).trimEnd().split('\n');
    await mkdir(join(dir, 'rotated'));
    const file = join(dir, 'rotated', 'audit.log');
    await writeFile(`${file}.2.gz`, gzipSync(lines.slice(0, 6).join('\n') + '\n'));
    await writeFile(`${file}.1`, lines.slice(6, 12).join('\n') + '\n');
    await writeFile(file, lines.slice(12).join('\n') + '\n');
    const v = await cli(['--file', file, '--verify']);
    expect(v.stdout).toContain('ok: 18 records verified (seq 1–18) in 3 files');
    const q = await cli(['--file', file, '--user', 'alice', '--event', 'login', '--json']);
    expect(q.stdout.trimEnd().split('\n').map((l) => JSON.parse(l).session)).toEqual(['old-alice', 's-alice']);
  });

  it('a missing rotation shows as a gap at the start of the next file', async () => {
    const lines = (await readFile(join(dir, 'audit.log'), 'utf8')).trimEnd().split('\n');
    await mkdir(join(dir, 'gap'));
    const file = join(dir, 'gap', 'audit.log');
    await writeFile(`${file}.3`, lines.slice(0, 6).join('\n') + '\n');
    await writeFile(`${file}.1`, lines.slice(12).join('\n') + '\n');
    const r = await cli(['--file', file, '--verify']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${file}.1:1 (seq 13): seq-gap`);
  });

  it('finds a pseudonymized user by name with POP3GW_AUDIT_KEY, via the config\'s logging.audit', async () => {
    const config = join(dir, 'pseudo', 'gateway.yaml');
    const raw = await readFile(join(dir, 'pseudo', 'audit.log'), 'utf8');
    expect(raw).not.toContain('"user":"alice"');
    expect(raw).toContain('"user":"u:');
    const r = await cli(['--config', config, '--user', 'alice', '--event', 'login', '--json'], { POP3GW_AUDIT_KEY: KEY });
    expect(r.code).toBe(0);
    const recs = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(recs).toHaveLength(2);
    expect(recs[0].user).toMatch(/^u:[0-9a-f]{16}$/);
  });

  it('refuses a name search on a pseudonymized audit without the key', async () => {
    const r = await cli(['--config', join(dir, 'pseudo', 'gateway.yaml'), '--user', 'alice']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('POP3GW_AUDIT_KEY');
  });

  it('exits 2 with usage on bad arguments', async () => {
    const cases = [['--bogus'], ['--since', 'yesterday'], ['--event', 'lgoin'], ['--ip', 'nope']];
    const runs = await Promise.all(cases.map((args) => cli(['--file', join(dir, 'audit.log'), ...args])));
    runs.forEach((r, i) => {
      expect(r.code, cases[i]!.join(' ')).toBe(2);
      expect(r.stderr).toContain('usage: npm run audit');
    });
  });

  it('exits 2 when there is no audit file or config', async () => {
    const r = await cli(['--file', join(dir, 'nothing-here.log')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no audit file');
    const c = await cli(['--config', join(dir, 'missing.yaml')]);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain('cannot read config');
  });
});
