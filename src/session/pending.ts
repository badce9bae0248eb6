/**
 * The FIFO of commands in flight to the backend, in client order, with what each
 * expects back. Replies the gateway writes itself take a slot too, so they come
 * out in the right place among relayed replies (RFC 2449 PIPELINING).
 *
 *   | done (shifted) | head: reply being read | sent, awaiting | not yet sent |
 */
import type { StatusLine } from '../protocol/response.ts';

export type EntryKind =
  /** The client's command: its reply is relayed. */
  | 'relay'
  /** The gateway's own question (UIDL n, LIST n, CAPA, login): reply consumed. */
  | 'internal'
  /** A reply the gateway writes itself once everything before it is done. */
  | 'local';

export interface PendingEntry {
  readonly kind: EntryKind;
  readonly verb: string;
  readonly args: readonly string[];
  /** Bytes to send to the backend (relay/internal). */
  readonly wire: Buffer | null;
  /** For `local`: the line to write (without CRLF). */
  readonly localReply: string | null;
  /** True when a +OK reply has a body. */
  readonly multiline: boolean;
  /** When the client's command arrived (for durations). */
  readonly startedAt: number;
  sent: boolean;
  /** A relayed AUTH exchange: `+ ` continuations go to the client. */
  readonly sasl?: boolean;
  /** Called with the reply; `body` only for internal multi-line replies. */
  readonly onReply?: (reply: ReplyInfo) => void;
  /** Slices of a relayed body as they pass (audit header capture). */
  readonly onBody?: ((slice: Buffer) => void) | undefined;
}

export interface ReplyInfo {
  readonly ok: boolean;
  readonly status: StatusLine;
  readonly statusLine: Buffer;
  /** Internal multi-line body (bounded), or null. */
  readonly body: Buffer | null;
  /** Octets of the relayed body (relay entries). */
  readonly octets: number;
}

export class PendingQueue {
  private readonly items: PendingEntry[] = [];
  private head = 0;
  /** Every entry before this index is sent or local: the sender starts looking here. */
  private cursor = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  /** Entries the client is waiting on (relay + local), not counting internal ones. */
  get clientDepth(): number {
    let n = 0;
    for (let i = this.head; i < this.items.length; i++) if (this.items[i]!.kind !== 'internal') n++;
    return n;
  }

  push(entry: PendingEntry): void {
    this.items.push(entry);
  }

  peek(): PendingEntry | undefined {
    return this.items[this.head];
  }

  shift(): PendingEntry | undefined {
    const e = this.items[this.head];
    if (e === undefined) return undefined;
    this.items[this.head] = undefined as unknown as PendingEntry;
    this.head++;
    if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.cursor = Math.max(0, this.cursor - this.head);
      this.head = 0;
    }
    return e;
  }

  /**
   * The oldest entry not yet sent to the backend (the sender marks it sent, then asks again).
   * Entries are sent in order, so the search resumes where the last one stopped: no iterator
   * object and no rescan of the queue per command.
   */
  nextUnsent(): PendingEntry | undefined {
    let i = Math.max(this.cursor, this.head);
    for (; i < this.items.length; i++) {
      const e = this.items[i]!;
      if (!e.sent && e.kind !== 'local') break;
    }
    this.cursor = i;
    return this.items[i];
  }

  /** True when some backend-bound entry was sent and has not been answered. */
  get inFlight(): boolean {
    for (let i = this.head; i < this.items.length; i++) {
      const e = this.items[i]!;
      if (e.kind !== 'local' && e.sent) return true;
    }
    return false;
  }

  clear(): void {
    this.items.length = 0;
    this.head = 0;
    this.cursor = 0;
  }
}
