import { describe, expect, it } from 'vitest';
import { HeaderCapture } from '../../../src/audit/headers.ts';

const MESSAGE = Buffer.from(
  'Received: from x\r\n' +
    'Message-ID: <abc@example.org>\r\n' +
    'From: Alice <alice@example.org>\r\n' +
    'Subject: a folded\r\n\tsubject line\r\n' +
    'subject: second subject ignored\r\n' +
    '\r\n' +
    'From: not a header, body text\r\n' +
    '..dot-stuffed body\r\n' +
    '.\r\n',
  'latin1',
);
const NAMES = ['Message-ID', 'From', 'Subject'];

function captureAll(chunks: Buffer[], names = NAMES, max?: number) {
  const c = new HeaderCapture(names, max);
  for (const ch of chunks) if (c.push(ch)) break;
  return c;
}

describe('audit header capture', () => {
  it('captures the listed fields, unfolded, first occurrence, named as configured', () => {
    const c = captureAll([MESSAGE]);
    expect(c.done).toBe(true);
    expect(c.result()).toEqual({ 'Message-ID': '<abc@example.org>', From: 'Alice <alice@example.org>', Subject: 'a folded subject line' });
  });

  it('gives the same result however the body is split into chunks', () => {
    const expected = captureAll([MESSAGE]).result();
    for (let i = 1; i < MESSAGE.length; i++) {
      expect(captureAll([MESSAGE.subarray(0, i), MESSAGE.subarray(i)]).result()).toEqual(expected);
    }
    const bytes = [...MESSAGE].map((b) => Buffer.from([b]));
    expect(captureAll(bytes).result()).toEqual(expected);
  });

  it('reports done at the end of the header, so the relay stops feeding it the body', () => {
    const c = new HeaderCapture(NAMES);
    const end = MESSAGE.indexOf('\r\n\r\n') + 2;
    expect(c.push(MESSAGE.subarray(0, end))).toBe(false);
    expect(c.push(MESSAGE.subarray(end, end + 2))).toBe(true);
  });

  it('never holds more than its cap, and parses what it got', () => {
    const big = Buffer.concat([Buffer.from('Subject: hi\r\nX-Long: '), Buffer.alloc(100_000, 'a')]);
    const c = new HeaderCapture(NAMES, 1024);
    expect(c.push(big)).toBe(true);
    expect(c.result()).toEqual({ Subject: 'hi' });
    expect((c as unknown as { buf: Buffer }).buf.length).toBe(1024);
  });

  it('a header-only message ending at the terminator still yields its fields', () => {
    const c = captureAll([Buffer.from('Subject: only\r\n.\r\n')]);
    expect(c.done).toBe(true);
    expect(c.result()).toEqual({ Subject: 'only' });
  });

  it('values are cleaned of control characters and capped', () => {
    const c = captureAll([Buffer.from(`Subject: a\u0007b ${'x'.repeat(400)}\r\n\r\n`)]);
    const s = c.result().Subject!;
    expect(s.startsWith('a b ')).toBe(true);
    expect(s.length).toBeLessThanOrEqual(257);
  });

  it('with no fields configured it is done at once and allocates nothing', () => {
    const c = new HeaderCapture([]);
    expect(c.done).toBe(true);
    expect(c.push(MESSAGE)).toBe(true);
    expect(c.result()).toEqual({});
  });
});
