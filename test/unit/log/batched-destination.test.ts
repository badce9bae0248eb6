import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { batchedDestination } from '../../../src/log/batched-destination.ts';

const dirs: string[] = [];
const tmpFile = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3gw-batch-'));
  dirs.push(dir);
  return path.join(dir, 'out.log');
};
const tick = () => new Promise((r) => setImmediate(r));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ready = (d: ReturnType<typeof batchedDestination>) => new Promise<void>((r) => d.once('ready', () => r()));

afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('batched log destination', () => {
  // By the thread pool (pipes, sockets) and on the loop (regular files) alike.
  it.each([false, true])('writes lines from separate event-loop turns with one system call, after the delay (on the loop: %s)', async (onLoop) => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: false }, 150, onLoop);
    await ready(dest);
    const sizes: number[] = [];
    dest.on('write', (n: number) => sizes.push(n));
    for (const n of [1, 2, 3]) {
      dest.write(`line ${n}\n`);
      await tick();
      await sleep(5);
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('');
    await sleep(300);
    expect(fs.readFileSync(file, 'utf8')).toBe('line 1\nline 2\nline 3\n');
    expect(sizes).toEqual([21]);
    dest.end();
  });

  it('writes at once past 32 KiB without waiting for the timer, and not before', async () => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: false }, 10_000);
    await ready(dest);
    const line = `${'x'.repeat(99)}\n`;
    // 30 000 bytes: a busy second's worth of lines at info waits for the timer in one batch.
    for (let i = 0; i < 300; i++) dest.write(line);
    await sleep(200);
    expect(fs.readFileSync(file, 'utf8').length).toBe(0);
    for (let i = 0; i < 100; i++) dest.write(line);
    await sleep(200);
    // Past 32 KiB it went out at once; the tail waits for the timer (or the end).
    expect(fs.readFileSync(file, 'utf8').length).toBeGreaterThanOrEqual(32 * 1024);
    await new Promise<void>((r) => {
      dest.once('close', () => r());
      dest.end();
    });
    expect(fs.readFileSync(file, 'utf8').length).toBe(40_000);
  });

  it('writes a 20 ms batch of a busy gateway (a few KiB) with one system call', async () => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: false }, 20);
    await ready(dest);
    const sizes: number[] = [];
    dest.on('write', (n: number) => sizes.push(n));
    const line = `${'z'.repeat(249)}\n`;
    for (let i = 0; i < 24; i++) dest.write(line); // 6 000 bytes: one second of ~150 sessions/s is 25 such batches
    await sleep(150);
    expect(sizes).toEqual([6000]);
    dest.end();
  });

  it('keeps every write within maxWrite at line boundaries (whole lines per pipe write for shared stdout)', async () => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: false, maxWrite: 4096 }, 50);
    await ready(dest);
    const sizes: number[] = [];
    dest.on('write', (n: number) => sizes.push(n));
    const line = `${'y'.repeat(299)}\n`;
    for (let i = 0; i < 40; i++) dest.write(line);
    await sleep(300);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(12_000);
    for (const n of sizes) {
      expect(n).toBeLessThanOrEqual(4096);
      expect(n % 300).toBe(0);
    }
    dest.end();
  });

  it('a flush asked for while a write is in flight still writes the rest, without another line', async () => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: false }, 10_000);
    await ready(dest);
    dest.write(`${'b'.repeat(40 * 1024 - 1)}\n`); // past 32 KiB: a write starts at once
    dest.write('tail\n');
    dest.flush(); // while that write is in flight (sonic-boom alone drops this one)
    await sleep(300);
    expect(fs.readFileSync(file, 'utf8').length).toBe(40 * 1024 + 5);
    dest.end();
  });

  it('counts bytes, not characters: non-ASCII lines arrive whole and a flush still completes', async () => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: false }, 10_000);
    await ready(dest);
    const line = `${'é'.repeat(999)}ü\n`; // 2 001 bytes in 1 001 characters
    for (let i = 0; i < 20; i++) dest.write(line); // 40 020 bytes: a write starts past 32 KiB
    dest.write('€ tail\n');
    dest.flush();
    await sleep(300);
    expect(fs.readFileSync(file, 'utf8')).toBe(line.repeat(20) + '€ tail\n');
    dest.end();
  });

  it('a line dropped for a full buffer is not waited for: no write loop after the flush', async () => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: false, maxLength: 48 * 1024 }, 10_000);
    await ready(dest);
    let writes = 0;
    let dropped = 0;
    dest.on('write', () => writes++);
    dest.on('drop', () => dropped++);
    dest.write(`${'c'.repeat(40 * 1024 - 1)}\n`); // past 32 KiB: a write starts at once
    dest.write(`${'d'.repeat(16 * 1024 - 1)}\n`); // over maxLength while it is in flight: dropped
    dest.write('tail\n');
    dest.flush();
    await sleep(300);
    expect(dropped).toBe(1);
    expect(fs.readFileSync(file, 'utf8').length).toBe(40 * 1024 + 5);
    expect(writes).toBeLessThanOrEqual(3);
    dest.end();
  });

  it('leaves a synchronous destination unbatched (tests read the file right after writing)', () => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: true }, 150);
    dest.write('now\n');
    expect(fs.readFileSync(file, 'utf8')).toBe('now\n');
    dest.end();
  });
});

describe('batched log destination writing on the loop (regular files)', () => {
  it.each([false, true])('a batch already flushed is not written again, empty, when its timer fires (on the loop: %s)', async (onLoop) => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: false }, 50, onLoop);
    await ready(dest);
    const sizes: number[] = [];
    dest.on('write', (n: number) => sizes.push(n));
    dest.write('abc\n');
    dest.flush();
    await sleep(200);
    expect(sizes).toEqual([4]);
    expect(fs.readFileSync(file, 'utf8')).toBe('abc\n');
    dest.end();
  });

  it('a flush writes before it returns: no thread-pool job to wait for', async () => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: false }, 10_000, true);
    await ready(dest);
    dest.write('one\n');
    dest.write('two\n');
    expect(fs.readFileSync(file, 'utf8')).toBe('');
    dest.flush();
    expect(fs.readFileSync(file, 'utf8')).toBe('one\ntwo\n');
    dest.end();
  });

  it('past 32 KiB writes at once, in writes of at most maxWrite at line boundaries', async () => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: false, maxWrite: 16 * 1024 }, 10_000, true);
    await ready(dest);
    const sizes: number[] = [];
    dest.on('write', (n: number) => sizes.push(n));
    const line = `${'q'.repeat(999)}\n`;
    for (let i = 0; i < 7; i++) dest.write(line);
    expect(sizes).toEqual([]);
    for (let i = 0; i < 3; i++) dest.write(line); // 10 000 bytes: past minLength (maxWrite / 2)
    expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(8000);
    for (const n of sizes) expect(n % 1000).toBe(0);
    dest.end();
  });

  it('lines still waiting for the timer reach the file when the process exits at once', () => {
    const file = tmpFile();
    const mod = fileURLToPath(new URL('../../../src/log/batched-destination.ts', import.meta.url));
    const script = `
      const { batchedDestination } = await import(${JSON.stringify(mod)});
      const dest = batchedDestination({ dest: ${JSON.stringify(file)}, sync: false }, 10_000, true);
      dest.once('ready', () => {
        for (let i = 0; i < 3; i++) dest.write('exit ' + i + '\\n');
        process.exit(0);
      });`;
    execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: 'pipe', timeout: 20_000 });
    expect(fs.readFileSync(file, 'utf8')).toBe('exit 0\nexit 1\nexit 2\n');
  });

  it('removes its exit hook when it is closed', async () => {
    const file = tmpFile();
    const before = new Set(process.listeners('exit'));
    const dest = batchedDestination({ dest: file, sync: false }, 10_000, true);
    await ready(dest);
    const added = process.listeners('exit').filter((l) => !before.has(l));
    expect(added).toHaveLength(1);
    await new Promise<void>((r) => {
      dest.once('close', () => r());
      dest.end();
    });
    expect(process.listeners('exit')).not.toContain(added[0]);
  });
});
