/**
 * An asynchronous pino destination (sonic-boom) that gathers lines for up to `delayMs` (or 32 KiB)
 * and writes them with one system call. A plain async destination writes every line on its own
 * as soon as the previous write finished: on a gateway that is not saturated that is one thread
 * pool round trip per log line or audit record, which cost more CPU per NOOP than the command.
 * Each write is a thread-pool job (a worker thread woken, a write, the loop woken again): at
 * info a busy gateway logs ~1.7 KiB per session, so a 2 KiB threshold meant about one job per
 * session; past the timer instead, one per 20 ms (A/B, info + audit: 0.938× CPU per session).
 *
 * One one-shot timer per batch, armed by the first line after a write (no timer while idle).
 * Lines reach the file or pipe at most `delayMs` late; at exit pino's hook (and close()/end())
 * flushes what is buffered synchronously, so only a SIGKILL can lose them.
 *
 * `onLoop` (for regular files only): each batch is written with write(2) on the event loop, as
 * nginx writes a buffered access_log, instead of as a thread-pool job. The job's cost was the
 * hand-off, not the write: a worker woken by a futex, then the loop woken again for the
 * completion (`perf`, info + audit: ~40 µs of futex and wake-ups per session, two files). A
 * write of a few KiB to the page cache takes a few µs. A pipe or socket (journald) keeps the
 * thread pool: a reader that falls behind must never stop the loop.
 */
import pino from 'pino';

type Destination = ReturnType<typeof pino.destination>;
export type DestinationOptions = Exclude<Parameters<typeof pino.destination>[0], string | number | undefined>;

/** Past this many bytes a batch is written at once, without waiting for the timer. */
const BATCH_BYTES = 32 * 1024;
/** The largest single write, where nothing asks for less (sonic-boom splits at whole lines). */
export const DEFAULT_MAX_WRITE = 64 * 1024;
/**
 * Writes of at most this many bytes reach a pipe whole (POSIX PIPE_BUF on Linux): worker
 * processes share the primary's stdout, so a log batch must not interleave with another's.
 */
export const PIPE_BUF = 4096;
export const DEFAULT_BATCH_DELAY_MS = 20;

/** sonic-boom sets `destroyed` once ended; its type does not list it. */
export function isDestroyed(dest: Destination): boolean {
  return (dest as unknown as { destroyed?: boolean }).destroyed === true;
}

export function batchedDestination(opts: DestinationOptions, delayMs = DEFAULT_BATCH_DELAY_MS, onLoop = false): Destination {
  const sync = (opts as { sync?: boolean }).sync === true;
  if (sync || delayMs <= 0) return pino.destination(opts);
  // sonic-boom splits its buffer at whole writes (lines) once maxWrite would be passed.
  const maxWrite = (opts as { maxWrite?: number }).maxWrite ?? DEFAULT_MAX_WRITE;
  // Buffers, not strings: with strings sonic-boom measures the UTF-8 length of the whole batch
  // it appends to on every line (O(batch) per line, up to 32 KiB); with buffers it adds lengths.
  // sonic-boom's sync mode with a minLength buffers the same way and writes with writeSync.
  const dest = pino.destination({
    ...opts, sync: onLoop, contentMode: 'buffer', maxWrite, minLength: Math.min(BATCH_BYTES, maxWrite / 2),
  });
  // pino flushes an async destination at exit; one that writes on the loop (sonic-boom's sync
  // mode) it leaves alone, so the batch still waiting for its timer is written here.
  if (onLoop) {
    const atExit = (): void => {
      try {
        if (!isDestroyed(dest)) dest.flushSync();
      } catch {
        // Nothing left to report it to at exit.
      }
    };
    process.on('exit', atExit);
    dest.once('close', () => process.off('exit', atExit));
  }
  let timer: NodeJS.Timeout | null = null;
  /** Bytes handed over and not yet written. */
  let queued = 0;
  /** A flush was asked for and bytes are still waiting for it. */
  let due = false;
  const flushNow = dest.flush.bind(dest);
  // sonic-boom ignores a flush while a write is in flight, and when that write ends it goes on
  // only past minLength: the rest (up to 32 KiB) would wait for the next line, on an idle
  // gateway indefinitely. So a flush stays due until its bytes are written, and is retried
  // when the write in flight ends.
  dest.flush = ((cb?: (err?: Error) => void): void => {
    // Nothing waiting: sonic-boom would still make a write(2) of zero bytes (a thread-pool job
    // when async), e.g. for the batch timer after an explicit flush already wrote the batch.
    if (queued <= 0 && cb === undefined) return;
    if (queued > 0) due = true;
    flushNow(cb);
  }) as typeof dest.flush;
  dest.on('write', (n: number) => {
    queued -= n;
    if (queued <= 0) {
      queued = 0;
      due = false;
    }
  });
  // A line over maxLength is dropped, never written: counted as queued it would keep the flush
  // due for ever, and every end of a write would start another (empty) one.
  dest.on('drop', (data: Buffer) => {
    queued -= data.length;
  });
  dest.on('drain', () => {
    if (due && queued > 0 && !isDestroyed(dest)) flushNow();
  });
  const flush = (): void => {
    timer = null;
    if (!isDestroyed(dest)) dest.flush();
  };
  const write = dest.write.bind(dest);
  dest.write = (data: string | Buffer): boolean => {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    queued += buf.length;
    if (timer === null) {
      timer = setTimeout(flush, delayMs);
      timer.unref();
    }
    return write(buf as unknown as string);
  };
  return dest;
}
