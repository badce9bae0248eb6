/**
 * The audit file: one hash-chained JSON line per record, written through pino's asynchronous
 * destination (sonic-boom), so a slow disk delays the audit, never the relay. pino's own
 * serializer is bypassed on purpose: the chain hashes the exact line, including `time`, so
 * the line is built and sealed here and handed to the destination as is. The destination
 * still gives us async writes, `reopen()` and a synchronous flush at process exit.
 *
 * Rotation: rename the file, then send SIGUSR1 (the app calls `reopen()`): records still
 * buffered go to the new file and `seq` continues, so files verified oldest first form one
 * chain. Do not use logrotate's `copytruncate`: records written between the copy and the
 * truncation are lost and show up as a gap in the chain.
 *
 * File mode: a file the gateway creates (at start, or at the reopen after a rotation) gets
 * `logging.auditMode` (default 0640: users, addresses and subjects are not for every local
 * account), set with fchmod so the umask cannot change it. A file that already exists keeps
 * its mode and owner: an operator (or logrotate's `create`) who chose them is not overruled.
 *
 * One writer per file: with several worker processes each needs its own file (or the primary
 * writes for all), or the chains interleave.
 *
 * Sealing is batched: a record is stamped (`time`) and prepared when written, and sealed with
 * the others of the last `SEAL_DELAY_MS` (or `SEAL_BATCH` records) in one pass, in the order
 * written, then handed to the destination and flushed. Sealed one by one, in between the
 * session work that produced them, records cost several times what they cost in a tight loop
 * (measured in alternating rounds: 3.6 % of CPU per full session). A record reaches the file
 * at most ~20 ms after it was written, as before; flush(), close(), reopen() and process exit
 * seal what is pending first. With `sync` (tests) every record is sealed and written at once.
 */
import { closeSync, constants, fchmodSync, openSync } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import pino from 'pino';
import { batchedDestination, isDestroyed } from '../log/batched-destination.ts';
import type { LoggingConfig } from '../config/schema.ts';
import type { Logger } from '../util/logger.ts';
import { AuditChain, parseChained, GENESIS, type ChainHead } from './chain.ts';
import { pseudonymizer, type Pseudonymizer } from './pseudonymize.ts';
import type { AuditFields } from './record.ts';
import { isoTime } from '../util/iso-time.ts';

export interface AuditSink {
  /** False for the sink of `logging.audit: null`: a session then builds no records at all. */
  readonly enabled: boolean;
  write(fields: AuditFields): void;
  /** Reopen the file by name (after logrotate renamed it). */
  reopen(): void;
  /** Resolves once every record written so far reached the file (or was dropped). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export class AuditSinkError extends Error {
  constructor(
    readonly code: 'AUDIT_KEY_MISSING' | 'AUDIT_OPEN',
    message: string,
  ) {
    super(message);
    this.name = 'AuditSinkError';
  }
}

export interface AuditSinkOptions {
  /** HMAC key for pseudonyms (env POP3GW_AUDIT_KEY); required when cfg.auditPseudonymize. */
  key: string | null;
  log: Logger;
  now?: () => Date;
  /** Bytes the destination may buffer while the disk lags; past it records are dropped (and logged). */
  maxBufferBytes?: number;
  /** Called once for each record that did not reach the file (counted as pop3gw_audit_errors_total). */
  onError?: () => void;
  /** Write each record before returning (tests read the file right after a reply); default async. */
  sync?: boolean;
}

const DEFAULT_MAX_BUFFER = 64 * 1024 * 1024;
/** Records wait at most this long to be sealed with the others. */
const SEAL_DELAY_MS = 20;
/** Past this many pending records they are sealed at once. */
const SEAL_BATCH = 64;
/** The tail read to find the chain head; grows once if a huge record hides the last line. */
const TAIL_BYTES = [64 * 1024, 4 * 1024 * 1024];

export const nullAuditSink: AuditSink = Object.freeze({
  enabled: false,
  write: () => undefined,
  reopen: () => undefined,
  flush: async () => undefined,
  close: async () => undefined,
});

export async function createAuditSink(cfg: LoggingConfig, opts: AuditSinkOptions): Promise<AuditSink> {
  if (cfg.audit === null) return nullAuditSink;
  if (cfg.auditPseudonymize && !opts.key) {
    throw new AuditSinkError(
      'AUDIT_KEY_MISSING',
      'logging.auditPseudonymize is on but POP3GW_AUDIT_KEY is not set: refusing to write real user names',
    );
  }
  const file = cfg.audit;
  await ensureWritable(file, cfg.auditMode);
  const start = await findChainHead(file);
  if (start.head === null && start.foundInvalidTail) {
    opts.log.warn({ event: 'audit-chain-restart', file }, 'audit file does not end in a chained record: chain restarts');
  }
  // A regular file (the usual case) takes its batches with write(2) on the loop; a FIFO or a
  // device keeps the thread pool (see batched-destination.ts).
  const regularFile = (await stat(file)).isFile();
  const dest = openDestination(file, () => batchedDestination({
    dest: file,
    sync: opts.sync === true,
    mkdir: true,
    append: true,
    mode: cfg.auditMode,
    maxLength: opts.maxBufferBytes ?? DEFAULT_MAX_BUFFER,
    // Buffers, not strings: the destination then tracks lengths instead of re-measuring the
    // string it is appending to on every record (O(buffered bytes) per write while one is in flight).
    contentMode: 'buffer',
  }, undefined, regularFile));
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(new AuditSinkError('AUDIT_OPEN', `cannot open audit file ${file}: ${err.message}`));
    dest.once('error', onError);
    dest.once('ready', () => {
      dest.off('error', onError);
      resolve();
    });
  });
  const sink = new FileAuditSink(file, cfg.auditMode, dest, new AuditChain(start.head ?? GENESIS), {
    pseudonymize: pseudonymizer(cfg.auditPseudonymize ? opts.key : null),
    log: opts.log,
    now: opts.now ?? (() => new Date()),
    onError: opts.onError ?? (() => undefined),
    sealDelayMs: opts.sync === true ? 0 : SEAL_DELAY_MS,
  });
  // A torn last line (crash mid-write) must not swallow the first new record.
  if (start.needsNewline) sink.writeRaw('\n');
  return sink;
}

/** A destination that writes on the loop opens the file synchronously, so its open fails by throwing. */
function openDestination(file: string, create: () => Destination): Destination {
  try {
    return create();
  } catch (err) {
    throw new AuditSinkError('AUDIT_OPEN', `cannot open audit file ${file}: ${(err as Error).message}`);
  }
}

/**
 * Opens (creating) the file once ourselves so a bad path or permission fails at startup with a
 * clear error, before a destination exists whose exit hook would then trip over it.
 */
async function ensureWritable(file: string, mode: number): Promise<void> {
  try {
    await mkdir(dirname(file), { recursive: true });
    createWithMode(file, mode);
    await (await open(file, 'a')).close();
  } catch (err) {
    throw new AuditSinkError('AUDIT_OPEN', `cannot open audit file ${file}: ${(err as Error).message}`);
  }
}

/**
 * Creates `file` with exactly `mode` when it does not exist (O_EXCL, so an existing file is
 * never touched); fchmod after the open because open's mode is narrowed by the umask.
 * Synchronous: it runs at start and in the reopen signal handler, before the destination opens.
 */
function createWithMode(file: string, mode: number): void {
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_APPEND, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw err;
  }
  try {
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

type Destination = ReturnType<typeof pino.destination>;

class FileAuditSink implements AuditSink {
  readonly enabled = true;
  private submitted = 0;
  private settled = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private readonly pseudonymize: Pseudonymizer;
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly onError: () => void;
  /** 0: seal each record as it is written. */
  private readonly sealDelayMs: number;
  /** Prepared records waiting to be sealed, in the order written. */
  private pending: Record<string, unknown>[] = [];
  private sealTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly file: string,
    private readonly mode: number,
    private readonly dest: Destination,
    private readonly chain: AuditChain,
    deps: { pseudonymize: Pseudonymizer; log: Logger; now: () => Date; onError: () => void; sealDelayMs: number },
  ) {
    this.pseudonymize = deps.pseudonymize;
    this.onError = deps.onError;
    this.log = deps.log;
    this.now = deps.now;
    this.sealDelayMs = deps.sealDelayMs;
    // Before the destination's own exit hook writes out its buffer synchronously.
    if (this.sealDelayMs > 0) process.prependListener('exit', this.sealOnExit);
    dest.on('write', (n: number) => this.settle(n));
    dest.on('drop', (data: string | Buffer) => {
      this.settle(Buffer.byteLength(data));
      this.onError();
      // The record was sealed: the file will show this as a seq gap, which is the truth.
      this.log.error({ event: 'audit-drop', file: this.file }, 'audit buffer full: a record was dropped');
    });
    dest.on('error', (err: NodeJS.ErrnoException) => {
      this.log.error({ event: 'audit-error', file: this.file, code: err.code, err: err.message }, 'audit write failed');
      this.onError();
      for (const w of this.waiters.splice(0)) w.reject(err);
    });
  }

  write(fields: AuditFields): void {
    if (this.closed) {
      this.log.warn({ event: 'audit-closed', record: fields.event }, 'audit record after close ignored');
      return;
    }
    try {
      const rec = this.prepare(fields);
      if (this.sealDelayMs <= 0) {
        this.writeRaw(this.chain.sealOwned(rec) + '\n');
        return;
      }
      this.pending.push(rec);
      if (this.pending.length >= SEAL_BATCH) this.sealPending();
      else if (this.sealTimer === null) {
        this.sealTimer = setTimeout(this.sealPending, this.sealDelayMs);
        this.sealTimer.unref();
      }
    } catch (err) {
      this.recordFailed(err);
    }
  }

  /** Seals every pending record in the order written, hands the lines over and writes them out. */
  private readonly sealPending = (): void => this.sealNow(true);
  /** At exit the destination's own hook writes its buffer synchronously: no async write may start here. */
  private readonly sealOnExit = (): void => this.sealNow(false);

  private sealNow(writeOut: boolean): void {
    if (this.sealTimer !== null) {
      clearTimeout(this.sealTimer);
      this.sealTimer = null;
    }
    if (this.pending.length === 0) return;
    const recs = this.pending;
    this.pending = [];
    let handed = false;
    for (const rec of recs) {
      try {
        // One destination write per record: a full buffer then drops (and counts) single records.
        this.writeRaw(`${this.chain.sealOwned(rec)}\n`);
        handed = true;
      } catch (err) {
        // A timer callback must not throw: that would take the process down, not just the record.
        this.recordFailed(err);
      }
    }
    // The destination would wait up to its own batch delay again: write now (a no-op while a write is in flight).
    if (handed && writeOut && !isDestroyed(this.dest)) this.dest.flush();
  }

  /** Never into the relay: an audit failure is logged, the session goes on. */
  private recordFailed(err: unknown): void {
    this.log.error({ event: 'audit-error', err: (err as Error).message }, 'audit record not written');
    this.onError();
  }

  writeRaw(text: string): void {
    const buf = Buffer.from(text, 'utf8');
    this.submitted += buf.length;
    this.dest.write(buf as unknown as string);
  }

  reopen(): void {
    if (this.closed) return;
    // Records written before the rotation are sealed now (they go to the new file, as buffered ones do).
    this.sealPending();
    try {
      createWithMode(this.file, this.mode);
    } catch (err) {
      // The destination's own open reports the same failure through its error event.
      this.log.error({ event: 'audit-error', file: this.file, err: (err as Error).message }, 'audit file could not be created');
    }
    try {
      this.dest.reopen();
    } catch {
      // A destination that writes on the loop opens synchronously and throws as well as
      // emitting 'error' (handled above): a signal handler must not take the process down.
    }
    // The head goes to the operational log too: an outside anchor for the unkeyed chain.
    this.log.info({ event: 'audit-reopen', file: this.file, ...this.chain.head }, 'audit file reopened');
  }

  flush(): Promise<void> {
    this.sealPending();
    if (this.settled >= this.submitted) return Promise.resolve();
    // Waiting first: a destination that writes on the loop settles inside the flush below.
    const written = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    // Write a batch still waiting for its timer now (no-op while a write is in flight).
    if (!isDestroyed(this.dest)) this.dest.flush();
    return written;
  }

  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    this.closed = true;
    process.removeListener('exit', this.sealOnExit);
    try {
      await this.flush();
    } catch (err) {
      this.log.error({ event: 'audit-error', err: (err as Error).message }, 'audit flush at close failed');
    }
    await new Promise<void>((resolve) => {
      this.dest.once('close', () => resolve());
      this.dest.once('error', () => resolve());
      this.dest.end();
    });
    this.log.info({ event: 'audit-close', file: this.file, ...this.chain.head }, 'audit file closed');
  }

  private settle(n: number): void {
    this.settled += n;
    if (this.settled < this.submitted) return;
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /** `time` first for readability; user names (also inside USER args and signal detail) pseudonymized. */
  private prepare(fields: AuditFields): Record<string, unknown> {
    const rec: Record<string, unknown> = { time: isoTime(this.now().getTime()), ...fields };
    const p = this.pseudonymize;
    if (fields.user !== undefined) rec.user = p(fields.user);
    if (fields.command === 'USER' && fields.args !== undefined) rec.args = p(fields.args);
    if (fields.detail !== undefined) {
      const d: Record<string, unknown> = { ...fields.detail };
      if (typeof d.user === 'string') d.user = p(d.user);
      if (Array.isArray(d.users)) d.users = d.users.map((u) => (typeof u === 'string' ? p(u) : u));
      rec.detail = d;
    }
    return rec;
  }
}

export interface ChainStart {
  head: ChainHead | null;
  /** The file ends without a newline (a torn write). */
  needsNewline: boolean;
  /** The file had content but no chained record at its end. */
  foundInvalidTail: boolean;
}

/**
 * Where the chain continues: the last record of `file`, or, when `file` is missing or empty
 * (renamed by logrotate while the gateway was down), the last record of `file.1`.
 */
export async function findChainHead(file: string): Promise<ChainStart> {
  const own = await readTailHead(file);
  if (own.head !== null || own.size > 0) {
    return { head: own.head, needsNewline: own.needsNewline, foundInvalidTail: own.head === null };
  }
  const rotated = await readTailHead(`${file}.1`);
  return { head: rotated.head, needsNewline: false, foundInvalidTail: false };
}

async function readTailHead(file: string): Promise<{ head: ChainHead | null; size: number; needsNewline: boolean }> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { head: null, size: 0, needsNewline: false };
    throw err;
  }
  if (size === 0) return { head: null, size, needsNewline: false };
  const fh = await open(file, 'r');
  try {
    let needsNewline = false;
    for (const want of TAIL_BYTES) {
      const n = Math.min(want, size);
      const buf = Buffer.alloc(n);
      await fh.read(buf, 0, n, size - n);
      needsNewline = buf[n - 1] !== 0x0a;
      const lines = buf.toString('utf8').split('\n');
      // The first piece is a partial line unless the window starts at the file's beginning.
      const first = n === size ? 0 : 1;
      for (let i = lines.length - 1; i >= first; i--) {
        const rec = parseChained(lines[i] ?? '');
        if (rec !== null) return { head: { seq: rec.seq, hash: rec.hash }, size, needsNewline };
      }
      if (n === size) break;
    }
    return { head: null, size, needsNewline };
  } finally {
    await fh.close();
  }
}
