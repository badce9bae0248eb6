import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listAuditFiles, readLines } from '../../../src/audit/files.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pop3gw-files-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(file: string): Promise<string[]> {
  const out: string[] = [];
  for await (const l of readLines(file)) out.push(l);
  return out;
}

describe('audit files and rotations', () => {
  it('lists rotations oldest first: higher numbers first, the live file last', async () => {
    for (const n of ['audit.log', 'audit.log.1', 'audit.log.2.gz', 'audit.log.10.gz', 'audit.logger', 'other.log.1']) {
      await writeFile(join(dir, n), '');
    }
    expect((await listAuditFiles(join(dir, 'audit.log'))).map((f) => basename(f))).toEqual([
      'audit.log.10.gz', 'audit.log.2.gz', 'audit.log.1', 'audit.log',
    ]);
  });

  it('lists dateext rotations in date order before the live file', async () => {
    for (const n of ['audit.log', 'audit.log-20240502.gz', 'audit.log-20240501']) await writeFile(join(dir, n), '');
    expect((await listAuditFiles(join(dir, 'audit.log'))).map((f) => basename(f))).toEqual([
      'audit.log-20240501', 'audit.log-20240502.gz', 'audit.log',
    ]);
  });

  it('while logrotate compresses a rotation, only the complete plain copy is read', async () => {
    for (const n of ['audit.log.2', 'audit.log.2.gz']) await writeFile(join(dir, n), '');
    expect((await listAuditFiles(join(dir, 'audit.log'))).map((f) => basename(f))).toEqual(['audit.log.2']);
  });

  it('a missing folder or file gives an empty list', async () => {
    expect(await listAuditFiles(join(dir, 'nope', 'audit.log'))).toEqual([]);
    expect(await listAuditFiles(join(dir, 'audit.log'))).toEqual([]);
  });

  it('reads plain lines, CRLF or LF, with or without a final newline', async () => {
    await writeFile(join(dir, 'a'), 'one\r\ntwo\nthree');
    expect(await collect(join(dir, 'a'))).toEqual(['one', 'two', 'three']);
  });

  it('reads gzip files through zlib, multi-byte characters intact across chunks', async () => {
    const text = Array.from({ length: 20_000 }, (_, i) => `{"n":${i},"u":"jürgen🦊"}`).join('\n') + '\n';
    await writeFile(join(dir, 'a.gz'), gzipSync(text));
    const got = await collect(join(dir, 'a.gz'));
    expect(got).toHaveLength(20_000);
    expect(got[19_999]).toBe('{"n":19999,"u":"jürgen🦊"}');
  });

  it('a corrupt gzip file is an error, not a silent empty read', async () => {
    await writeFile(join(dir, 'bad.gz'), Buffer.from('not gzip at all'));
    await expect(collect(join(dir, 'bad.gz'))).rejects.toThrow();
  });
});
