/**
 * LazyChildLogger: a session's child logger is made on its first line that will be written, with
 * the same bindings as an eager child, and never at a level that writes nothing.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LazyChildLogger, type Logger } from '../../../src/util/logger.ts';
import { captureLogs } from '../../harness/log-capture.ts';

const flushed = () => new Promise((r) => setTimeout(r, 20));
const BINDINGS = { session: 's-1', listener: 'pop3s', client: '127.0.0.1:5000' };

/** A pino root at `level` whose child() calls are counted. */
function counted(level: string) {
  const sink = captureLogs();
  const root = pino({ level }, sink.stream);
  let children = 0;
  const child = root.child.bind(root);
  const parent = Object.assign(Object.create(root) as Logger, {
    child: (b: Record<string, unknown>) => {
      children++;
      return child(b);
    },
  });
  return { sink, root, parent, made: () => children };
}

describe('LazyChildLogger', () => {
  it('makes no child while every line is below the level', async () => {
    const { sink, parent, made } = counted('warn');
    const log = new LazyChildLogger(parent, BINDINGS);
    log.info({ event: 'session-start' }, 'session start');
    log.debug('debug text');
    log.info({ event: 'session-end' }, 'session end');
    await flushed();
    expect(made()).toBe(0);
    expect(sink.lines()).toEqual([]);
  });

  it('makes the child once, on the first line written, and every line carries the bindings', async () => {
    const { sink, parent, made } = counted('warn');
    const log = new LazyChildLogger(parent, BINDINGS);
    log.info({ event: 'session-start' }, 'session start');
    log.warn({ event: 'backend-closed' }, 'backend closed the connection');
    log.error('plain message');
    await flushed();
    expect(made()).toBe(1);
    expect(sink.lines()).toEqual([
      expect.objectContaining({ ...BINDINGS, level: 40, event: 'backend-closed', msg: 'backend closed the connection' }),
      expect.objectContaining({ ...BINDINGS, level: 50, msg: 'plain message' }),
    ]);
  });

  it('asks the parent per line until the child is made, not once up front', async () => {
    const { sink, root, parent } = counted('warn');
    const log = new LazyChildLogger(parent, BINDINGS);
    log.info({ event: 'command' }, 'before');
    root.level = 'info';
    log.info({ event: 'command' }, 'after');
    await flushed();
    expect(sink.lines().map((l) => l.msg)).toEqual(['after']);
  });

  it('writes through a parent that cannot tell its level', () => {
    const seen: unknown[] = [];
    const plain: Logger = {
      trace: () => undefined, debug: () => undefined, warn: () => undefined, error: () => undefined,
      info: (o: unknown) => void seen.push(o),
      child: () => plain,
    };
    new LazyChildLogger(plain, BINDINGS).info({ event: 'x' }, 'x');
    expect(seen).toEqual([{ event: 'x' }]);
  });
});
