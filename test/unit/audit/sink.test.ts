import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LoggingConfig } from '../../../src/config/schema.ts';
import { verifyLines } from '../../../src/audit/chain.ts';
import { pseudonymizer } from '../../../src/audit/pseudonymize.ts';
import { commandRecord, connectRecord, signalRecord, type SessionContext } from '../../../src/audit/record.ts';
import { createAuditSink, findChainHead, nullAuditSink, AuditSinkError } from '../../../src/audit/sink.ts';
import type { Logger } from '../../../src/util/logger.ts';

const ctx: SessionContext = { session: 's1', listener: 'pop3s', client: '192.0.2.7:51000', tls: 'TLSv1.3', user: 'alice' };

function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const at = (level: string) => (obj: object | string, msg?: string) =>
    lines.push(typeof obj === 'string' ? { level, msg: obj } : { level, ...obj, msg });
  const log: Logger = { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return { log, lines };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pop3gw-sink-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function cfg(over: Partial<LoggingConfig> = {}): LoggingConfig {
  return { level: 'info', audit: join(dir, 'audit.log'), auditHeaders: [], auditPseudonymize: false, auditMode: 0o640, format: 'json', ...over };
}

async function lines(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
}

describe('audit sink', () => {
  it('is a no-op sink when logging.audit is null', async () => {
    const sink = await createAuditSink(cfg({ audit: null }), { key: null, log: captureLogger().log });
    expect(sink).toBe(nullAuditSink);
  });

  it('writes one chained JSON line per record, time first', async () => {
    const now = new Date('2024-05-01T12:00:00.000Z');
    const sink = await createAuditSink(cfg(), { key: null, log: captureLogger().log, now: () => now });
    sink.write(connectRecord(ctx));
    sink.write(commandRecord(ctx, 'RETR', ['1'], 'ok', { uid: 'U1', octets: 10 }));
    await sink.close();
    const written = await lines(join(dir, 'audit.log'));
    expect(written).toHaveLength(2);
    expect(written[0]!.startsWith('{"time":"2024-05-01T12:00:00.000Z","session":"s1"')).toBe(true);
    expect(JSON.parse(written[1]!)).toMatchObject({ event: 'command', command: 'RETR', uid: 'U1', seq: 2 });
    expect(verifyLines(written)).toMatchObject({ ok: true, count: 2 });
  });

  it('never writes a password given to PASS', async () => {
    const sink = await createAuditSink(cfg(), { key: null, log: captureLogger().log });
    sink.write(commandRecord(ctx, 'PASS', ['s3cr3t-Pa55'], 'err'));
    await sink.close();
    expect(await readFile(join(dir, 'audit.log'), 'utf8')).not.toContain('s3cr3t-Pa55');
  });

  it('pseudonymizes the user, the USER argument and users inside signal detail', async () => {
    const p = pseudonymizer('k');
    const sink = await createAuditSink(cfg({ auditPseudonymize: true }), { key: 'k', log: captureLogger().log });
    sink.write(commandRecord(ctx, 'USER', ['alice'], 'ok'));
    sink.write(signalRecord(ctx, { signal: 'many-users-one-source', detail: { users: ['alice', 'bob'], user: 'carol' } }));
    await sink.close();
    const text = await readFile(join(dir, 'audit.log'), 'utf8');
    expect(text).not.toMatch(/alice|bob|carol/);
    const [user, sig] = (await lines(join(dir, 'audit.log'))).map((l) => JSON.parse(l));
    expect(user).toMatchObject({ user: p('alice'), args: p('alice') });
    expect(sig.detail).toEqual({ users: [p('alice'), p('bob')], user: p('carol') });
  });

  it('refuses to start pseudonymizing without a key', async () => {
    await expect(createAuditSink(cfg({ auditPseudonymize: true }), { key: null, log: captureLogger().log })).rejects.toMatchObject({
      code: 'AUDIT_KEY_MISSING',
    });
  });

  it('fails at startup with a clear error when the file cannot be opened', async () => {
    await writeFile(join(dir, 'plainfile'), 'x');
    const err = await createAuditSink(cfg({ audit: join(dir, 'plainfile', 'audit.log') }), { key: null, log: captureLogger().log }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuditSinkError);
    expect(err).toMatchObject({ code: 'AUDIT_OPEN' });
  });

  it('continues the chain from the tail of an existing file', async () => {
    const file = join(dir, 'audit.log');
    const first = await createAuditSink(cfg(), { key: null, log: captureLogger().log });
    for (let i = 0; i < 3; i++) first.write(connectRecord(ctx));
    await first.close();
    const second = await createAuditSink(cfg(), { key: null, log: captureLogger().log });
    second.write(connectRecord(ctx));
    second.write(connectRecord(ctx));
    await second.close();
    const all = await lines(file);
    expect(all.map((l) => JSON.parse(l).seq)).toEqual([1, 2, 3, 4, 5]);
    expect(verifyLines(all)).toMatchObject({ ok: true, count: 5 });
  });

  it('after a torn last line the next record starts on a line of its own and links to the last whole record', async () => {
    const file = join(dir, 'audit.log');
    const first = await createAuditSink(cfg(), { key: null, log: captureLogger().log });
    first.write(connectRecord(ctx));
    await first.close();
    await appendFile(file, '{"time":"2024-05-01T00:00:00.000Z","sess');
    const head = await findChainHead(file);
    expect(head).toMatchObject({ head: { seq: 1 }, needsNewline: true });
    const second = await createAuditSink(cfg(), { key: null, log: captureLogger().log });
    second.write(connectRecord(ctx));
    await second.close();
    const all = await lines(file);
    expect(all).toHaveLength(3);
    expect(verifyLines(all)).toMatchObject({ ok: false, line: 2, problem: 'bad-json' });
    expect(verifyLines([all[0]!, all[2]!])).toMatchObject({ ok: true, count: 2 });
  });

  it('continues from audit.log.1 when the live file was rotated away while stopped', async () => {
    const file = join(dir, 'audit.log');
    const first = await createAuditSink(cfg(), { key: null, log: captureLogger().log });
    first.write(connectRecord(ctx));
    first.write(connectRecord(ctx));
    await first.close();
    await rename(file, `${file}.1`);
    const second = await createAuditSink(cfg(), { key: null, log: captureLogger().log });
    second.write(connectRecord(ctx));
    await second.close();
    const older = verifyLines(await lines(`${file}.1`));
    if (!older.ok) throw new Error('rotated file should verify');
    expect(verifyLines(await lines(file), older.head)).toMatchObject({ ok: true, count: 1, head: { seq: 3 } });
  });

  it('reopen() after the file was renamed writes to a new file and seq continues', async () => {
    const file = join(dir, 'audit.log');
    const { log, lines: logged } = captureLogger();
    const sink = await createAuditSink(cfg(), { key: null, log });
    sink.write(connectRecord(ctx));
    sink.write(connectRecord(ctx));
    await sink.flush();
    await rename(file, `${file}.1`);
    sink.reopen();
    sink.write(connectRecord(ctx));
    await sink.close();
    const rotated = await lines(`${file}.1`);
    const fresh = await lines(file);
    expect(rotated).toHaveLength(2);
    expect(fresh.map((l) => JSON.parse(l).seq)).toEqual([3]);
    const older = verifyLines(rotated);
    if (!older.ok) throw new Error('rotated file should verify');
    expect(verifyLines(fresh, older.head)).toMatchObject({ ok: true });
    expect(logged.find((l) => l.event === 'audit-reopen')).toMatchObject({ seq: 2 });
  });

  it('reopen() onto a path it cannot open logs the failure and keeps the process up', async () => {
    const file = join(dir, 'audit.log');
    const { log, lines: logged } = captureLogger();
    let errors = 0;
    const sink = await createAuditSink(cfg(), { key: null, log, onError: () => errors++ });
    sink.write(connectRecord(ctx));
    await sink.flush();
    // Rotated away, and a directory where the file was: the open fails with EISDIR (a
    // destination that opens synchronously throws it from the signal handler's call).
    await rename(file, `${file}.1`);
    await mkdir(file);
    expect(() => sink.reopen()).not.toThrow();
    await new Promise((r) => setTimeout(r, 50));
    expect(logged.some((l) => l.event === 'audit-error')).toBe(true);
    expect(errors).toBeGreaterThan(0);
  });

  it('flush() resolves once the records are in the file (written on the loop for a regular file)', async () => {
    const file = join(dir, 'audit.log');
    // A torn last line: the sink's first bytes are a newline of its own, with no record to seal,
    // so flush() has to write them itself (and a write on the loop settles before it returns).
    await appendFile(file, '{"time":"2024-05-01T00:00:00.000Z","sess');
    const sink = await createAuditSink(cfg(), { key: null, log: captureLogger().log });
    const flushedFirst = await Promise.race([sink.flush().then(() => 'flushed'), new Promise((r) => setTimeout(() => r('hung'), 2000))]);
    expect(flushedFirst).toBe('flushed');
    sink.write(connectRecord(ctx));
    const done = await Promise.race([sink.flush().then(() => 'flushed'), new Promise((r) => setTimeout(() => r('hung'), 2000))]);
    expect(done).toBe('flushed');
    expect(await lines(file)).toHaveLength(2);
    await sink.close();
  });

  describe('file mode', () => {
    const modeOf = async (f: string) => (await stat(f)).mode & 0o777;
    // The umask is per process (vitest runs each file in its own fork): set, then restored.
    async function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
      const saved = process.umask(mask);
      try {
        return await fn();
      } finally {
        process.umask(saved);
      }
    }

    it('creates the audit file 0640 whatever the umask, and again at the reopen after a rename', async () => {
      const file = join(dir, 'audit.log');
      const sink = await withUmask(0o077, () => createAuditSink(cfg(), { key: null, log: captureLogger().log }));
      sink.write(connectRecord(ctx));
      await sink.flush();
      expect(await modeOf(file)).toBe(0o640);
      await rename(file, `${file}.1`);
      await withUmask(0o077, async () => sink.reopen());
      sink.write(connectRecord(ctx));
      await sink.close();
      expect(await modeOf(file)).toBe(0o640);
      expect(await lines(file)).toHaveLength(1);
    });

    it('creates it with logging.auditMode when set', async () => {
      const file = join(dir, 'audit.log');
      const sink = await withUmask(0o000, () => createAuditSink(cfg({ auditMode: 0o600 }), { key: null, log: captureLogger().log }));
      await sink.close();
      expect(await modeOf(file)).toBe(0o600);
    });

    it('leaves the mode of a file that already exists alone', async () => {
      const file = join(dir, 'audit.log');
      await writeFile(file, '');
      await chmod(file, 0o604);
      const sink = await createAuditSink(cfg(), { key: null, log: captureLogger().log });
      sink.write(connectRecord(ctx));
      await sink.close();
      expect(await modeOf(file)).toBe(0o604);
    });
  });

  it('write() returns at once and flush() waits until every record is on disk', async () => {
    const file = join(dir, 'audit.log');
    const sink = await createAuditSink(cfg(), { key: null, log: captureLogger().log });
    const started = performance.now();
    for (let i = 0; i < 2000; i++) sink.write(commandRecord(ctx, 'RETR', [String(i + 1)], 'ok', { octets: i }));
    expect(performance.now() - started).toBeLessThan(4000);
    await sink.flush();
    expect(await lines(file)).toHaveLength(2000);
    await sink.close();
    expect(verifyLines(await lines(file))).toMatchObject({ ok: true, count: 2000 });
  });

  it('a record after close is ignored and logged, and close is idempotent', async () => {
    const { log, lines: logged } = captureLogger();
    const sink = await createAuditSink(cfg(), { key: null, log });
    await sink.close();
    await sink.close();
    sink.write(connectRecord(ctx));
    expect(await lines(join(dir, 'audit.log'))).toEqual([]);
    expect(logged.some((l) => l.event === 'audit-closed')).toBe(true);
  });

  it('seals written records in a batch, in order, and writes them out within the batch delay without a flush', async () => {
    const sink = await createAuditSink(cfg(), { key: null, log: captureLogger().log });
    for (let i = 1; i <= 5; i++) sink.write(commandRecord(ctx, 'RETR', [String(i)], 'ok'));
    // Not sealed yet: nothing was handed to the file in this turn of the loop.
    expect((await readFile(join(dir, 'audit.log'), 'utf8'))).toBe('');
    const deadline = Date.now() + 2000;
    let written: string[] = [];
    while (Date.now() < deadline && written.length < 5) {
      await new Promise((r) => setTimeout(r, 10));
      written = await lines(join(dir, 'audit.log'));
    }
    expect(written.map((l) => JSON.parse(l).msg)).toEqual([1, 2, 3, 4, 5]);
    expect(verifyLines(written)).toMatchObject({ ok: true, count: 5 });
    await sink.close();
  });

  it('a record that cannot be sealed in a batch is logged and counted, and the others of the batch are written', async () => {
    const { log, lines: logged } = captureLogger();
    let errors = 0;
    const sink = await createAuditSink(cfg(), { key: null, log, onError: () => errors++ });
    sink.write(connectRecord(ctx));
    // A BigInt has no JSON form: sealing throws, inside the batch's timer.
    sink.write(signalRecord(ctx, { signal: 'new-source', detail: { n: 10n } }));
    sink.write(commandRecord(ctx, 'STAT', [], 'ok'));
    await new Promise((r) => setTimeout(r, 100));
    await sink.close();
    const written = await lines(join(dir, 'audit.log'));
    expect(written.map((l) => JSON.parse(l).event)).toEqual(['connect', 'command']);
    expect(verifyLines(written)).toMatchObject({ ok: true, count: 2 });
    expect(errors).toBe(1);
    expect(logged.filter((l) => l.event === 'audit-error')).toHaveLength(1);
  });

  it('records still waiting to be sealed reach the file when the process exits at once', () => {
    const file = join(dir, 'audit.log');
    const sinkModule = fileURLToPath(new URL('../../../src/audit/sink.ts', import.meta.url));
    const recordModule = fileURLToPath(new URL('../../../src/audit/record.ts', import.meta.url));
    const script = `
      const { createAuditSink } = await import(${JSON.stringify(sinkModule)});
      const { connectRecord } = await import(${JSON.stringify(recordModule)});
      const log = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, child() { return log; } };
      const sink = await createAuditSink({ level: 'info', audit: ${JSON.stringify(file)}, auditHeaders: [], auditPseudonymize: false, auditMode: 0o640, format: 'json' }, { key: null, log });
      for (let i = 0; i < 3; i++) sink.write(connectRecord({ session: 's' + i, listener: 'l', client: '127.0.0.1:1', tls: false }));
      process.exit(0);`;
    execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: 'pipe', timeout: 20_000 });
    return lines(file).then((written) => {
      expect(written.map((l) => JSON.parse(l).session)).toEqual(['s0', 's1', 's2']);
      expect(verifyLines(written)).toMatchObject({ ok: true, count: 3 });
    });
  });

  it('a full buffer drops records, logs it, and flush still completes', async () => {
    const { log, lines: logged } = captureLogger();
    const sink = await createAuditSink(cfg(), { key: null, log, maxBufferBytes: 2000 });
    for (let i = 0; i < 200; i++) sink.write(connectRecord(ctx));
    await sink.flush();
    // The next record after the loss makes the gap visible inside the file.
    sink.write(connectRecord(ctx));
    await sink.close();
    expect(logged.some((l) => l.event === 'audit-drop')).toBe(true);
    const r = verifyLines(await lines(join(dir, 'audit.log')));
    // Where the first gap falls depends on when batches were written (at once on the loop for a
    // regular file, later by the thread pool for a pipe); that it is in the file is what counts.
    expect(r).toMatchObject({ ok: false, problem: 'seq-gap' });
    expect((r as { seq: number }).seq).toBeGreaterThan(1);
    expect((r as { seq: number }).seq).toBeLessThanOrEqual(201);
    expect(logged.find((l) => l.event === 'audit-close')).toMatchObject({ seq: 201 });
  });

  it('reports each record that missed the file through onError, once per record (pop3gw_audit_errors_total)', async () => {
    const { log, lines: logged } = captureLogger();
    let errors = 0;
    const sink = await createAuditSink(cfg(), { key: null, log, maxBufferBytes: 2000, onError: () => errors++ });
    for (let i = 0; i < 200; i++) sink.write(connectRecord(ctx));
    await sink.close();
    const dropped = logged.filter((l) => l.event === 'audit-drop').length;
    expect(dropped).toBeGreaterThan(0);
    expect(errors).toBe(dropped);
    expect(errors).toBe(200 - (await lines(join(dir, 'audit.log'))).length);
  });
});
