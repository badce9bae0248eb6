import { describe, expect, it } from 'vitest';
import { createRootLogger, redactSecrets } from '../../../src/log/logger.ts';
import { captureLogs } from '../../harness/log-capture.ts';

describe('the root logger', () => {
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
