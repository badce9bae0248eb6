import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ReplyReader } from '../../../src/backend/line-reader.ts';

const LIMITS = { lineMax: 512, bodyMax: 4096 };
const FIXTURE = Buffer.from('+OK hello <ts@host>\r\n+OK list follows\r\nUSER\r\n..DOTTED\r\n.\r\n+OK extra', 'latin1');

function stream(): { s: PassThrough; reader: ReplyReader } {
  const s = new PassThrough();
  // ReplyReader uses only the Readable side of a socket: a PassThrough stands in for it.
  return { s, reader: new ReplyReader(s as unknown as Socket, LIMITS, 'test:1') };
}

async function readFixture(chunks: Buffer[]): Promise<{ greeting: string; capa: string; body: string[]; leftover: string }> {
  const { s, reader } = stream();
  const writes = (async () => {
    for (const c of chunks) {
      s.write(c);
      await new Promise((r) => setImmediate(r));
    }
  })();
  const greeting = await reader.readStatus('greeting', 1000);
  const capa = await reader.readStatus('CAPA reply', 1000);
  const body = await reader.readBody('CAPA list', 1000);
  await writes;
  await new Promise((r) => setImmediate(r));
  return { greeting: greeting.status.text, capa: capa.status.kind, body, leftover: reader.detach().toString('latin1') };
}

describe('ReplyReader', () => {
  const expected = { greeting: 'hello <ts@host>', capa: 'ok', body: ['USER', '.DOTTED'], leftover: '+OK extra' };

  it('reads status lines and a dot-stuffed body given in one piece', async () => {
    expect(await readFixture([FIXTURE])).toEqual(expected);
  });

  it('gives the same result however the bytes are split in two', async () => {
    for (let at = 1; at < FIXTURE.length; at++) {
      expect(await readFixture([FIXTURE.subarray(0, at), FIXTURE.subarray(at)])).toEqual(expected);
    }
  });

  it('gives the same result one byte at a time', async () => {
    expect(await readFixture([...FIXTURE].map((b) => Buffer.from([b])))).toEqual(expected);
  });

  it('accepts lines ended by a lone LF', async () => {
    const { s, reader } = stream();
    s.write('+OK hi\n');
    expect((await reader.readStatus('greeting', 1000)).status.text).toBe('hi');
  });

  it('removes its listeners when detached and leaves unread bytes to the caller', async () => {
    const { s, reader } = stream();
    s.write('+OK hi\r\nrest');
    await reader.readStatus('greeting', 1000);
    expect(reader.detach().toString()).toBe('rest');
    expect(s.listenerCount('readable') + s.listenerCount('end') + s.listenerCount('close') + s.listenerCount('error')).toBe(0);
  });

  it('fails with TIMEOUT naming what it waited for', async () => {
    const { reader } = stream();
    await expect(reader.readStatus('greeting', 30)).rejects.toMatchObject({ code: 'TIMEOUT', message: 'test:1: no greeting within 30 ms' });
  });

  it('fails with CLOSED when the stream ends before a whole line', async () => {
    const { s, reader } = stream();
    s.end('+OK partial');
    await expect(reader.readStatus('greeting', 1000)).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('fails with CLOSED and the cause when the stream errors', async () => {
    const { s, reader } = stream();
    const pending = reader.readStatus('greeting', 1000);
    s.destroy(new Error('ECONNRESET'));
    await expect(pending).rejects.toMatchObject({ code: 'CLOSED', cause: expect.any(Error) });
  });

  it('fails with CLOSED when aborted', async () => {
    const { reader } = stream();
    const controller = new AbortController();
    const pending = reader.readStatus('greeting', 1000, controller.signal);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('fails with PROTOCOL on a body line over the line limit and on a body over its cap', async () => {
    const long = stream();
    long.s.write(`${'x'.repeat(600)}\r\n.\r\n`);
    await expect(long.reader.readBody('CAPA list', 1000)).rejects.toMatchObject({ code: 'PROTOCOL' });
    const big = stream();
    big.s.write(`${'y'.repeat(100)}\r\n`.repeat(50));
    await expect(big.reader.readBody('CAPA list', 1000)).rejects.toMatchObject({ code: 'PROTOCOL' });
  });
});
