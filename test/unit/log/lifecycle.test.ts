import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { lifecycleLogger } from '../../../src/log/lifecycle.ts';
import { captureLogs } from '../../harness/log-capture.ts';

describe('lifecycle lines', () => {
  it('are printed at info even when logging.level is warn', () => {
    const logs = captureLogs();
    const log = pino({ level: 'warn' }, logs.stream);
    log.info({ event: 'listening' }, 'suppressed');
    lifecycleLogger(log).info({ event: 'listening', listener: 'pop3s', host: '127.0.0.1', port: 995 }, 'listening');
    const lines = logs.lines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'listening', listener: 'pop3s', port: 995 });
  });

  it('leave a logger that already prints info as it is', () => {
    const log = pino({ level: 'debug' }, captureLogs().stream);
    expect(lifecycleLogger(log)).toBe(log);
  });
});
