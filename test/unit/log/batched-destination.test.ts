import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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
  it('writes lines from separate event-loop turns with one system call, after the delay', async () => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: false }, 150);
    await ready(dest);
    let writes = 0;
    dest.on('write', () => writes++);
    for (const n of [1, 2, 3]) {
      dest.write(`line ${n}\n`);
      await tick();
      await sleep(5);
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('');
    await sleep(300);
    expect(fs.readFileSync(file, 'utf8')).toBe('line 1\nline 2\nline 3\n');
    expect(writes).toBe(1);
    dest.end();
  });

  it('writes at once past 4 KiB without waiting for the timer', async () => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: false }, 10_000);
    await ready(dest);
    const line = `${'x'.repeat(99)}\n`;
    for (let i = 0; i < 50; i++) dest.write(line);
    await sleep(200);
    // The first 4 KiB went out at once; the tail waits for the timer (or the end).
    expect(fs.readFileSync(file, 'utf8').length).toBeGreaterThanOrEqual(4096);
    await new Promise<void>((r) => {
      dest.once('close', () => r());
      dest.end();
    });
    expect(fs.readFileSync(file, 'utf8').length).toBe(5000);
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

  it('leaves a synchronous destination unbatched (tests read the file right after writing)', () => {
    const file = tmpFile();
    const dest = batchedDestination({ dest: file, sync: true }, 150);
    dest.write('now\n');
    expect(fs.readFileSync(file, 'utf8')).toBe('now\n');
    dest.end();
  });
});
