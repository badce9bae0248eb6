/**
 * Notices when certificate or key files change on disk (a certbot-style renewal), so new
 * handshakes get the new certificate without a SIGHUP. Polls with fs.watchFile rather than
 * fs.watch: polling follows symlinks (certbot's live/ links point into archive/), sees a file
 * replaced by rename, and works on every file system. Only content changes count (mtime,
 * ctime, inode, size), not the atime our own reload causes. Changes are debounced, so a cert
 * and a key written one after the other give one callback. Never keeps the process alive.
 */
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { pairFiles } from '../config/cert-pair.ts';
import type { TlsConfig } from '../config/schema.ts';

/** Every certificate and key file of the config: each item of a list, and every SNI pair's. */
export function tlsFiles(cfg: TlsConfig): string[] {
  return [...pairFiles(cfg), ...Object.values(cfg.sni).flatMap(pairFiles)];
}

export interface CertWatchOptions {
  /** How often each file is stat'ed (default 2 s). */
  readonly intervalMs?: number;
  /** Quiet time after the last change before the callback runs (default 1 s). */
  readonly debounceMs?: number;
}

const DEFAULT_INTERVAL_MS = 2_000;
const DEFAULT_DEBOUNCE_MS = 1_000;

export class CertFileWatcher {
  private readonly files: readonly string[];
  private readonly debounceMs: number;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(files: Iterable<string>, private readonly onChange: () => void, opts: CertWatchOptions = {}) {
    this.files = [...new Set(files)];
    this.debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    const interval = opts.intervalMs ?? DEFAULT_INTERVAL_MS;
    for (const f of this.files) watchFile(f, { interval, persistent: false }, this.listener);
  }

  private readonly listener = (curr: Stats, prev: Stats): void => {
    if (this.closed) return;
    if (curr.mtimeMs === prev.mtimeMs && curr.ctimeMs === prev.ctimeMs && curr.ino === prev.ino && curr.size === prev.size) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.closed) this.onChange();
    }, this.debounceMs);
    this.timer.unref();
  };

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const f of this.files) unwatchFile(f, this.listener);
  }
}
