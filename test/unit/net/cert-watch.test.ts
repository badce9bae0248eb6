import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CertFileWatcher } from '../../../src/net/cert-watch.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('certificate file watcher', () => {
  let dir: string;
  let cert: string;
  let key: string;
  let watcher: CertFileWatcher | null = null;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3gw-certwatch-'));
    cert = path.join(dir, 'server.crt');
    key = path.join(dir, 'server.key');
    fs.writeFileSync(cert, 'cert v1');
    fs.writeFileSync(key, 'key v1');
  });

  afterEach(() => {
    watcher?.close();
    watcher = null;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('calls back once for a cert and a key rewritten one after the other', async () => {
    let calls = 0;
    watcher = new CertFileWatcher([cert, key, cert], () => calls++, { intervalMs: 20, debounceMs: 300 });
    await sleep(100);
    fs.writeFileSync(cert, 'cert v2 (longer)');
    await sleep(100);
    fs.writeFileSync(key, 'key v2 (longer)');
    await sleep(1000);
    expect(calls).toBe(1);
  });

  it('sees a file replaced by rename, as certbot and atomic writers do', async () => {
    let calls = 0;
    watcher = new CertFileWatcher([cert], () => calls++, { intervalMs: 20, debounceMs: 50 });
    await sleep(100);
    const tmp = path.join(dir, 'new.crt');
    fs.writeFileSync(tmp, 'cert v1');
    fs.renameSync(tmp, cert);
    await sleep(500);
    expect(calls).toBe(1);
  });

  it('ignores reads of the files and stops calling back once closed', async () => {
    let calls = 0;
    watcher = new CertFileWatcher([cert], () => calls++, { intervalMs: 20, debounceMs: 50 });
    await sleep(100);
    for (let i = 0; i < 3; i++) {
      fs.readFileSync(cert);
      await sleep(60);
    }
    await sleep(200);
    expect(calls).toBe(0);
    watcher.close();
    fs.writeFileSync(cert, 'cert v3, after close');
    await sleep(300);
    expect(calls).toBe(0);
  });
});
