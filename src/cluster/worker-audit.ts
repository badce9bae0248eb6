/**
 * A worker's audit sink: records go to the primary, which is the one writer of the
 * hash-chained file (audit/sink.ts), so all workers' records form one chain in one file.
 * `write` is a one-way IPC message (never waits); `flush` asks the primary to confirm that
 * everything sent so far reached the file, which is what a graceful stop waits for.
 * The primary adds `time` when it seals the record, a fraction of a millisecond later.
 */
import type { AuditSink } from '../audit/sink.ts';
import type { AuditFields } from '../audit/record.ts';
import type { Logger } from '../util/logger.ts';
import type { IpcPeer } from './ipc.ts';

export const DEFAULT_FLUSH_TIMEOUT_MS = 10_000;

export class IpcAuditSink implements AuditSink {
  readonly enabled = true;
  #closed = false;

  constructor(
    private readonly peer: IpcPeer,
    private readonly log: Logger,
    private readonly flushTimeoutMs = DEFAULT_FLUSH_TIMEOUT_MS,
  ) {}

  write(fields: AuditFields): void {
    if (this.#closed) {
      this.log.warn({ event: 'audit-closed', record: fields.event }, 'audit record after close ignored');
      return;
    }
    this.peer.notify('audit', { fields });
  }

  /** The primary reopens the file on its own SIGUSR1. */
  reopen(): void {}

  async flush(): Promise<void> {
    await this.peer.request('audit-flush', null, this.flushTimeoutMs);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.flush().catch((err: unknown) => {
      this.log.error({ event: 'audit-error', err: (err as Error).message }, 'audit flush at close failed');
    });
  }
}
