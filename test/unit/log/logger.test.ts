import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRootLogger, logDestination, redactSecrets, stdoutWriteLimit, wantsPretty } from '../../../src/log/logger.ts';
import { captureLogs } from '../../harness/log-capture.ts';

const flushed = () => new Promise((r) => setTimeout(r, 50));

describe('the root logger', () => {
  it.each([
    ['auto', true, true],
    ['auto', false, false],
    ['pretty', false, true],
    ['pretty', true, true],
    ['json', true, false],
    ['json', false, false],
  ] as const)('format %s with a terminal=%s prints readable lines: %s', (format, tty, pretty) => {
    expect(wantsPretty(format, tty)).toBe(pretty);
  });

  it('writes JSON lines to a given destination, even with format auto', async () => {
    const sink = captureLogs();
    createRootLogger({ level: 'info', format: 'auto' }, sink.stream).info({ event: 'listening', port: 1 }, 'listening');
    await flushed();
    expect(sink.find({ msg: 'listening', event: 'listening', level: 'info', port: 1 })).toHaveLength(1);
  });

  it('writes readable lines with format pretty: message first, fields indented, no JSON', async () => {
    const sink = captureLogs();
    createRootLogger({ level: 'info', format: 'pretty' }, sink.stream).info({ event: 'listening', port: 995 }, 'listening');
    await flushed();
    const text = sink.text();
    expect(text).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(\d+\): listening\n {4}event: "listening"\n {4}port: 995\n$/);
    expect(text).not.toContain('\x1b['); // not a terminal: no colour codes
  });

  it('redacts secrets in readable lines exactly as in JSON lines', async () => {
    for (const format of ['pretty', 'json'] as const) {
      const sink = captureLogs();
      const log = createRootLogger({ level: 'debug', format }, sink.stream);
      log.warn({ password: 'pw-1', token: 'tok-2', user: { pass: 'pw-3', secret: 'sec-4' }, auth: { credentials: 'cr-5' } }, 'oops');
      await flushed();
      const text = sink.text();
      for (const secret of ['pw-1', 'tok-2', 'pw-3', 'sec-4', 'cr-5']) expect(text, `${format}: ${secret}`).not.toContain(secret);
      expect(text.match(/\[redacted\]/g), format).toHaveLength(5);
    }
  });

  it('still accepts a bare level, for JSON lines', async () => {
    const sink = captureLogs();
    createRootLogger('warn', sink.stream).warn('x');
    await flushed();
    expect(sink.find({ level: 'warn', msg: 'x' })).toHaveLength(1);
  });
});

describe('the root logger\'s redaction', () => {
  it('censors secret names at the top level and one object down, and leaves the caller\'s object alone', () => {
    const logs = captureLogs();
    const log = createRootLogger('info', logs.stream);
    const fields = { event: 'x', password: 'hunter2', nested: { token: 'abc', keep: 1 }, list: ['pass'], user: 'bob' };
    log.info(fields, 'line');
    const [line] = logs.lines();
    expect(line).toMatchObject({ event: 'x', password: '[redacted]', nested: { token: '[redacted]', keep: 1 }, list: ['pass'], user: 'bob', level: 'info' });
    expect(logs.text()).not.toContain('hunter2');
    expect(fields.password).toBe('hunter2');
    expect(fields.nested.token).toBe('abc');
  });

  it('censors secrets in child bindings too', () => {
    const logs = captureLogs();
    createRootLogger('info', logs.stream).child({ session: 's1', authorization: 'Bearer x' }).info('hi');
    expect(logs.lines()[0]).toMatchObject({ session: 's1', authorization: '[redacted]', msg: 'hi' });
  });

  it('returns the same object when nothing needs censoring (no copy per line)', () => {
    const obj = { event: 'command', verb: 'STAT', ms: 1, inner: { a: 1 } };
    expect(redactSecrets(obj)).toBe(obj);
  });
});

describe('the root logger\'s writes to stdout', () => {
  it('stays within PIPE_BUF only where other processes share a pipe or socket', () => {
    expect(stdoutWriteLimit(true, false)).toBe(4096); // cluster workers on journald's socket or a pipe
    expect(stdoutWriteLimit(true, true)).toBe(64 * 1024); // a regular file keeps each write whole
    expect(stdoutWriteLimit(false, false)).toBe(64 * 1024); // one process alone on its stdout
    expect(stdoutWriteLimit(false, true)).toBe(64 * 1024);
  });
});

describe('a log output that fails', () => {
  // Written on the loop (a regular file), a failed write(2) is emitted from inside the log call:
  // unheard, it would throw into whatever was logging (a session in the middle of closing).
  it.each([true, false])('never throws into the caller, is reported once, and the lines follow once it works again (on the loop: %s)', async (onLoop) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3gw-logfail-'));
    try {
      const file = path.join(dir, 'out.log');
      const notes: string[] = [];
      const dest = logDestination(file, { onLoop, notify: (e) => notes.push(String(e.code)) });
      await new Promise<void>((r) => dest.once('ready', () => r()));
      // sonic-boom writes to `fd`: a read-only descriptor makes every write fail with EBADF.
      const boom = dest as unknown as { fd: number };
      const realFd = boom.fd;
      const readOnly = fs.openSync(file, 'r');
      boom.fd = readOnly;
      const log = createRootLogger('info', dest);
      const line = 'x'.repeat(200);
      expect(() => {
        for (let i = 0; i < 400; i++) log.info({ event: 'filler', n: i, line }, 'filler'); // ~100 KiB: past every threshold
        dest.flush();
      }).not.toThrow();
      await new Promise((r) => setTimeout(r, 100));
      expect(notes).toEqual(['EBADF']);
      // The disk has room again: what was kept is written, in order.
      boom.fd = realFd;
      fs.closeSync(readOnly);
      log.info({ event: 'after' }, 'after');
      dest.flush();
      await new Promise((r) => setTimeout(r, 200));
      const written = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { n?: number; event: string });
      expect(written.at(-1)!.event).toBe('after');
      expect(written.filter((l) => l.event === 'filler').map((l) => l.n)).toEqual(Array.from({ length: 400 }, (_, i) => i));
      await new Promise<void>((r) => {
        dest.once('close', () => r());
        dest.end();
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
