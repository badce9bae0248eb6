/**
 * The model backend is the oracle of the session fuzzer, so it is checked here against
 * replies written out by hand (RFC 1939) and over a real socket, faults included.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL_MAILBOX, Pop3Model, startModelBackend, type ModelBackend } from './model-backend.ts';

const text = (b: Buffer): string => b.toString('latin1');

describe('the POP3 model', () => {
  it('refuses mail commands before login and logs in only with the right password', () => {
    const m = new Pop3Model();
    expect(text(m.handle('STAT').reply)).toMatch(/^-ERR /);
    expect(text(m.handle('PASS alice-secret').reply)).toMatch(/^-ERR /);
    expect(text(m.handle('USER alice').reply)).toBe('+OK\r\n');
    expect(text(m.handle('PASS wrong').reply)).toMatch(/^-ERR \[AUTH\]/);
    expect(m.state).toBe('authorization');
    m.handle('USER alice');
    expect(text(m.handle('PASS alice-secret').reply)).toBe('+OK Logged in.\r\n');
    expect(m.state).toBe('transaction');
  });

  it('byte-stuffs dot-leading lines in RETR and ends with a lone dot', () => {
    const m = Pop3Model.loggedIn();
    const size = MODEL_MAILBOX[0]!.content.length;
    expect(text(m.handle('RETR 1').reply)).toBe(
      `+OK ${size} octets\r\nFrom: a@example.org\r\nSubject: one\r\nMessage-ID: <one@example.org>\r\n\r\n` +
        'Hello\r\n..leading dot\r\n...two dots\r\n..\r\nend\r\n.\r\n',
    );
    expect(text(m.handle('RETR 2').reply)).toBe(`+OK ${MODEL_MAILBOX[1]!.content.length} octets\r\nSubject: empty body\r\n\r\n.\r\n`);
  });

  it('answers TOP with the headers, the blank line and n body lines', () => {
    const m = Pop3Model.loggedIn();
    expect(text(m.handle('TOP 1 2').reply)).toBe('+OK\r\nFrom: a@example.org\r\nSubject: one\r\nMessage-ID: <one@example.org>\r\n\r\nHello\r\n..leading dot\r\n.\r\n');
    expect(text(m.handle('TOP 5 0').reply)).toBe('+OK\r\nSubject: dots\r\n\r\n.\r\n');
  });

  it('keeps STAT, LIST and UIDL consistent through DELE and RSET', () => {
    const m = Pop3Model.loggedIn();
    const total = MODEL_MAILBOX.reduce((a, x) => a + x.content.length, 0);
    expect(text(m.handle('STAT').reply)).toBe(`+OK 5 ${total}\r\n`);
    expect(text(m.handle('DELE 2').reply)).toBe('+OK Message 2 deleted\r\n');
    expect(text(m.handle('DELE 2').reply)).toMatch(/^-ERR /);
    expect(text(m.handle('RETR 2').reply)).toMatch(/^-ERR /);
    expect(text(m.handle('STAT').reply)).toBe(`+OK 4 ${total - MODEL_MAILBOX[1]!.content.length}\r\n`);
    expect(text(m.handle('UIDL').reply)).toBe('+OK\r\n1 uid-one\r\n3 uid-big\r\n4 uid-long-lines\r\n5 uid-dots-only\r\n.\r\n');
    expect(text(m.handle('LIST 2').reply)).toMatch(/^-ERR /);
    expect(text(m.handle('LIST 9').reply)).toMatch(/^-ERR /);
    expect(text(m.handle('RSET').reply)).toBe('+OK\r\n');
    expect(text(m.handle('LIST').reply).split('\r\n')).toHaveLength(5 + 3);
    expect(m.handle('QUIT')).toEqual({ reply: Buffer.from('+OK Bye\r\n'), close: true });
  });
});

/** A raw client that collects everything until the server closes or `ms` pass. */
async function converse(port: number, send: string, ms: number): Promise<{ data: string; closed: boolean }> {
  const s = net.connect({ host: '127.0.0.1', port });
  let data = '';
  let closed = false;
  s.on('data', (d: Buffer) => (data += d.toString('latin1')));
  s.on('error', () => undefined);
  s.on('close', () => (closed = true));
  await new Promise((r) => s.once('connect', r));
  s.write(send);
  const deadline = Date.now() + ms;
  while (!closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  s.destroy();
  return { data, closed };
}

describe('the model backend server', () => {
  let backend: ModelBackend;
  beforeAll(async () => {
    backend = await startModelBackend({ pipelining: true });
  });
  afterAll(async () => {
    await backend.close();
  });

  it('answers pipelined commands in order and closes after QUIT', async () => {
    const r = await converse(backend.port, 'USER bob\r\nPASS bob-secret\r\nNOOP\r\nLIST 1\r\nQUIT\r\n', 2000);
    expect(r.closed).toBe(true);
    expect(r.data).toBe(`+OK model POP3 server ready.\r\n+OK\r\n+OK Logged in.\r\n+OK\r\n+OK 1 ${MODEL_MAILBOX[0]!.content.length}\r\n+OK Bye\r\n`);
    expect(backend.received.at(-1)).toEqual(['USER bob', 'PASS bob-secret', 'NOOP', 'LIST 1', 'QUIT']);
  });

  it('closes part-way through the reply to the armed command', async () => {
    backend.arm({ kind: 'close', atCommand: 3, keep: 0.5 });
    const r = await converse(backend.port, 'USER alice\r\nPASS alice-secret\r\nRETR 1\r\nNOOP\r\n', 2000);
    const full = text(Pop3Model.loggedIn().handle('RETR 1').reply);
    expect(r.closed).toBe(true);
    expect(r.data).toBe(`+OK model POP3 server ready.\r\n+OK\r\n+OK Logged in.\r\n${full.slice(0, Math.floor(full.length / 2))}`);
    expect(backend.fired.at(-1)?.command).toBe('RETR 1');
  });

  it('stalls or sends garbage on demand, and arms one connection only', async () => {
    backend.arm({ kind: 'stall', atCommand: 1 });
    const stalled = await converse(backend.port, 'NOOP\r\nNOOP\r\n', 300);
    expect(stalled).toEqual({ data: '+OK model POP3 server ready.\r\n', closed: false });
    backend.arm({ kind: 'garbage', atCommand: 2, bytes: Buffer.from('*junk\r\n') });
    const junk = await converse(backend.port, 'USER x\r\nNOOP\r\nNOOP\r\n', 300);
    expect(junk.data).toBe('+OK model POP3 server ready.\r\n+OK\r\n*junk\r\n');
    const normal = await converse(backend.port, 'CAPA\r\n', 300);
    expect(normal.data).toContain('PIPELINING\r\n.\r\n');
    await backend.waitIdle(2000);
  });
});
