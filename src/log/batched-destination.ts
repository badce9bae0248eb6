/**
 * An asynchronous pino destination (sonic-boom) that gathers lines for up to `delayMs` (or 4 KiB)
 * and writes them with one system call. A plain async destination writes every line on its own
 * as soon as the previous write finished: on a gateway that is not saturated that is one thread
 * pool round trip per log line or audit record, which cost more CPU per NOOP than the command.
 *
 * One one-shot timer per batch, armed by the first line after a write (no timer while idle).
 * Lines reach the file or pipe at most `delayMs` late; at exit pino's hook (and close()/end())
 * flushes what is buffered synchronously, so only a SIGKILL can lose them.
 */
import pino from 'pino';

type Destination = ReturnType<typeof pino.destination>;
export type DestinationOptions = Exclude<Parameters<typeof pino.destination>[0], string | number | undefined>;

/** Past this many bytes a batch is written at once, without waiting for the timer. */
const BATCH_BYTES = 4096;
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

export function batchedDestination(opts: DestinationOptions, delayMs = DEFAULT_BATCH_DELAY_MS): Destination {
  const sync = (opts as { sync?: boolean }).sync === true;
  if (sync || delayMs <= 0) return pino.destination(opts);
  // sonic-boom splits its buffer at whole writes (lines) once maxWrite would be passed.
  const maxWrite = (opts as { maxWrite?: number }).maxWrite ?? 16 * 1024;
  const dest = pino.destination({ ...opts, minLength: Math.min(BATCH_BYTES, maxWrite / 2) });
  let timer: NodeJS.Timeout | null = null;
  const flush = (): void => {
    timer = null;
    if (!isDestroyed(dest)) dest.flush();
  };
  const write = dest.write.bind(dest);
  dest.write = (data: string): boolean => {
    if (timer === null) {
      timer = setTimeout(flush, delayMs);
      timer.unref();
    }
    return write(data);
  };
  return dest;
}
