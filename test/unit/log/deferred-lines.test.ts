/**
 * Session log lines formatted in batches (src/log/deferred-lines.ts): written a few ms later,
 * each with the time it was logged, in the order logged with every other line, with the
 * session's bindings and its parent's, and never lost at exit.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createRootLogger } from '../../../src/log/logger.ts';
import { DEFAULT_LINE_DELAY_MS, LineQueue } from '../../../src/log/deferred-lines.ts';
import { LazyChildLogger, sessionLogger, silentLogger, type Logger } from '../../../src/util/logger.ts';
import { captureLogs } from '../../harness/log-capture.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const BINDINGS = { session: 's-1', listener: 'pop3s', client: '127.0.0.1:5000' };

describe('batched session lines', () => {
  it('are written after the batch delay, not at once, each with the time it was logged', async () => {
    const sink = captureLogs();
    const root = createRootLogger('info', sink.stream);
    const log = sessionLogger(root, BINDINGS);
    const before = Date.now();
    log.info({ event: 'session-start' }, 'session start');
    log.info({ event: 'command', verb: 'STAT', result: 'ok', ms: 0 }, 'command');
    expect(sink.lines()).toEqual([]);
    await sleep(DEFAULT_LINE_DELAY_MS + 30);
    const lines = sink.lines();
    expect(lines).toEqual([
      expect.objectContaining({ ...BINDINGS, level: 'info', event: 'session-start', msg: 'session start' }),
      expect.objectContaining({ ...BINDINGS, level: 'info', event: 'command', verb: 'STAT' }),
    ]);
    for (const l of lines) {
      const t = Date.parse(l.time as string);
      // Logged at once: stamped then, not when the batch was written 20 ms later.
      expect(t).toBeGreaterThanOrEqual(before);
      expect(t).toBeLessThan(before + DEFAULT_LINE_DELAY_MS / 2);
    }
    // Every key once per line: the replayed time is pino's own `time`, not a second one.
    for (const text of sink.text().trim().split('\n')) expect(text.match(/"time":/g)).toHaveLength(1);
  });

  it('keep the order logged: a line written straight to the root goes after the queued ones', async () => {
    const sink = captureLogs();
    const root = createRootLogger('info', sink.stream);
    const a = sessionLogger(root, { session: 'a' });
    const b = sessionLogger(root, { session: 'b' });
    a.info({ event: 'e1' }, 'one');
    b.warn({ event: 'e2' }, 'two');
    root.info({ event: 'e3' }, 'three');
    a.error({ event: 'e4' }, 'four');
    root.child({ role: 'worker' }).warn({ event: 'e5' }, 'five');
    await sleep(DEFAULT_LINE_DELAY_MS + 30);
    expect(sink.lines().map((l) => [l.event, l.session])).toEqual([['e1', 'a'], ['e2', 'b'], ['e3', undefined], ['e4', 'a'], ['e5', undefined]]);
  });

  it('drop lines below the level without queueing them, and answer isLevelEnabled as pino would', async () => {
    const sink = captureLogs();
    const root = createRootLogger('warn', sink.stream);
    const log = sessionLogger(root, BINDINGS);
    log.info({ event: 'session-start' }, 'session start');
    log.debug('debug text');
    log.warn({ event: 'backend-closed' }, 'backend closed');
    expect(log.isLevelEnabled?.('info')).toBe(false);
    expect(log.isLevelEnabled?.('warn')).toBe(true);
    await sleep(DEFAULT_LINE_DELAY_MS + 30);
    expect(sink.lines().map((l) => l.event)).toEqual(['backend-closed']);
  });

  it('carry the bindings of the logger they were made from (a cluster worker\'s child)', async () => {
    const sink = captureLogs();
    const root = createRootLogger('info', sink.stream);
    const worker = root.child({ role: 'worker', worker: 2 }) as unknown as Logger;
    sessionLogger(worker, BINDINGS).info({ event: 'session-start' }, 'session start');
    await sleep(DEFAULT_LINE_DELAY_MS + 30);
    expect(sink.lines()).toEqual([expect.objectContaining({ role: 'worker', worker: 2, ...BINDINGS, event: 'session-start' })]);
  });

  it('redact secrets as every other line does', async () => {
    const sink = captureLogs();
    const root = createRootLogger('info', sink.stream);
    sessionLogger(root, { session: 's', token: 'bearer-x' }).info({ event: 'x', password: 'hunter2', nested: { secret: 's3' } }, 'x');
    await sleep(DEFAULT_LINE_DELAY_MS + 30);
    expect(sink.text()).not.toMatch(/hunter2|s3"|bearer-x/);
    expect(sink.lines()).toHaveLength(1);
  });

  it('are written at once past the batch size, and a line pino cannot format does not stop the others', () => {
    const written: string[] = [];
    const queue = new LineQueue({ delayMs: 60_000, maxPending: 3 });
    const parent = {
      levelVal: 30,
      child: (b: Record<string, unknown>): Logger => ({
        ...silentLogger,
        info: (o: object | string) => {
          if (typeof o === 'object' && 'bad' in o) throw new Error('cannot format');
          written.push(`${String(b.session)}:${JSON.stringify(o)}`);
        },
      }),
    };
    const log = queue.child(parent as unknown as Logger, { session: 's' });
    log.info({ n: 1 });
    log.info({ bad: true });
    expect(written).toEqual([]);
    log.info({ n: 3 });
    expect(written).toEqual(['s:{"n":1}', 's:{"n":3}']);
    expect(queue.pending).toBe(0);
  });

  it('keep working when writing a batch out fails', () => {
    const written: unknown[] = [];
    let fail = true;
    const queue = new LineQueue({ delayMs: 60_000, maxPending: 1, afterReplay: () => {
      if (fail) throw new Error('EIO');
    } });
    const parent = { levelVal: 30, child: (): Logger => ({ ...silentLogger, info: (o: object | string) => void written.push(o) }) };
    const log = queue.child(parent as unknown as Logger, { session: 's' });
    expect(() => log.info({ n: 1 })).not.toThrow();
    fail = false;
    log.info({ n: 2 });
    expect(written).toEqual([{ n: 1 }, { n: 2 }]);
    expect(queue.pending).toBe(0);
  });

  it('fall back to writing at once where the parent cannot batch (a test\'s plain logger)', () => {
    expect(sessionLogger(silentLogger, BINDINGS)).toBeInstanceOf(LazyChildLogger);
  });

  it.each(['exit', 'throw', 'end'])('reach stdout when the process ends before the batch timer (%s)', async (how) => {
    const out = await new Promise<string>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'test/fixtures/log/lines-at-exit.ts', how], { cwd: ROOT, timeout: 20_000 }, (_err, stdout) => resolve(stdout));
    });
    const events = out.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.map((l) => [l.session, l.event])).toEqual([['exit-1', 'session-start'], ['exit-1', 'session-end']]);
  });
});
