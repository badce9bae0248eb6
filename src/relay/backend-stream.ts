/**
 * Reads the backend's bytes and matches each reply to the head of the pending
 * queue. Multi-line bodies go to the client as slices of the chunks they arrived
 * in (no copy, no per-line work); only the terminator scanner looks at them.
 * A reply nobody asked for, a status line that is not POP3, or a line past the
 * RFC 2449 limit is a protocol violation: the session ends.
 */
import { TerminatorScanner } from '../protocol/multiline.ts';
import { parseStatus, type StatusLine } from '../protocol/response.ts';
import type { PendingEntry, PendingQueue, ReplyInfo } from '../session/pending.ts';

export interface BackendStreamHooks {
  /** Relayed bytes for the client; false means the client is backpressured. */
  writeClient(buf: Buffer): boolean;
  /** A head entry got its whole reply. */
  done(entry: PendingEntry, reply: ReplyInfo): void;
  /** A `+ ` continuation for the head entry (a relayed SASL exchange). */
  continuation(entry: PendingEntry, line: Buffer): void;
  violation(reason: string): void;
}

export interface BackendStreamLimits {
  readonly responseLine: number;
  readonly maxMultiline: number;
  /** Cap for internal bodies the gateway keeps (CAPA, UIDL). */
  readonly maxInternalBody: number;
}

type Mode = 'status' | 'body';

export class BackendStream {
  private mode: Mode = 'status';
  private partial: Buffer | null = null;
  private readonly scanner = new TerminatorScanner();
  private status: StatusLine | null = null;
  private statusLine: Buffer = Buffer.alloc(0);
  private bodyOctets = 0;
  private internalBody: Buffer[] | null = null;
  private internalBytes = 0;
  private failed = false;
  /** Client backpressure: the owner pauses the backend socket when set. */
  blocked = false;

  constructor(
    private readonly queue: PendingQueue,
    private readonly limits: BackendStreamLimits,
    private readonly hooks: BackendStreamHooks,
  ) {}

  /**
   * True while a relayed body is half written to the client (its +OK already went out).
   * Nothing but the rest of that body may follow: a -ERR now would become part of the message.
   */
  get midReply(): boolean {
    return this.mode === 'body' && this.queue.peek()?.kind === 'relay';
  }

  /** Feed one chunk from the backend socket. */
  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && !this.failed) {
      const head = this.queue.peek();
      if (head === undefined || !head.sent || head.kind === 'local') {
        this.fail('unsolicited-reply');
        return;
      }
      off = this.mode === 'status' ? this.readStatus(head, chunk, off) : this.readBody(head, chunk, off);
    }
  }

  private fail(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    this.hooks.violation(reason);
  }

  private readStatus(head: PendingEntry, chunk: Buffer, off: number): number {
    const nl = chunk.indexOf(10, off);
    const have = (this.partial?.length ?? 0) + (nl < 0 ? chunk.length - off : nl + 1 - off);
    if (have > this.limits.responseLine) {
      this.fail('response-line-too-long');
      return chunk.length;
    }
    if (nl < 0) {
      const rest = chunk.subarray(off);
      this.partial = this.partial === null ? Buffer.from(rest) : Buffer.concat([this.partial, rest]);
      return chunk.length;
    }
    const line = this.partial === null ? chunk.subarray(off, nl + 1) : Buffer.concat([this.partial, chunk.subarray(off, nl + 1)]);
    const carried = this.partial !== null;
    this.partial = null;
    const end = line.length >= 2 && line[line.length - 2] === 13 ? line.length - 2 : line.length - 1;
    const status = parseStatus(line.subarray(0, end));
    if (status === null) {
      this.fail('bad-status-line');
      return chunk.length;
    }
    if (status.kind === 'continuation') {
      this.hooks.continuation(head, line);
      return nl + 1;
    }
    this.status = status;
    this.statusLine = line;
    if (!(head.multiline && status.kind === 'ok')) {
      if (head.kind === 'relay') this.write(line);
      this.finish(head, null);
      return nl + 1;
    }
    // A body follows. For relayed bodies, send the status line and as much body as
    // this chunk holds in one write when the line did not straddle chunks.
    this.mode = 'body';
    this.scanner.reset();
    this.bodyOctets = 0;
    if (head.kind === 'relay') {
      if (carried) {
        this.write(line);
        return nl + 1;
      }
      return this.readBody(head, chunk, nl + 1, off);
    }
    this.internalBody = [];
    this.internalBytes = 0;
    return nl + 1;
  }

  /**
   * `writeFrom` lets the status line that precedes the body in the same chunk
   * ride along in the same write.
   */
  private readBody(head: PendingEntry, chunk: Buffer, off: number, writeFrom = off): number {
    const end = this.scanner.scan(chunk, off);
    const stop = end < 0 ? chunk.length : end;
    const bodyLen = stop - off;
    this.bodyOctets += bodyLen;
    if (this.bodyOctets > this.limits.maxMultiline) {
      this.fail('multiline-too-large');
      return chunk.length;
    }
    if (head.kind === 'relay') {
      // Audit header capture sees the body as it passes; without it no slice is made for it.
      if (bodyLen > 0 && head.onBody !== undefined) head.onBody(chunk.subarray(off, stop));
      // The whole chunk is body (the bulk of a RETR): written as it came, no slice object per chunk.
      if (stop > writeFrom) this.write(writeFrom === 0 && stop === chunk.length ? chunk : chunk.subarray(writeFrom, stop));
    } else {
      this.internalBytes += bodyLen;
      if (this.internalBytes > this.limits.maxInternalBody) {
        this.fail('internal-reply-too-large');
        return chunk.length;
      }
      this.internalBody!.push(chunk.subarray(off, stop));
    }
    if (end >= 0) {
      this.mode = 'status';
      let body: Buffer | null = null;
      if (this.internalBody !== null) {
        const all = Buffer.concat(this.internalBody);
        body = all.subarray(0, Math.max(0, all.length - 3)); // without ".\r\n"
        this.internalBody = null;
      }
      this.finish(head, body);
    }
    return stop;
  }

  private write(buf: Buffer): void {
    if (!this.hooks.writeClient(buf)) this.blocked = true;
  }

  private finish(head: PendingEntry, body: Buffer | null): void {
    const status = this.status!;
    const octets = head.multiline && status.kind === 'ok' ? Math.max(0, this.bodyOctets - 3) : 0;
    this.status = null;
    this.hooks.done(head, { ok: status.kind === 'ok', statusLine: this.statusLine, body, octets, status });
  }
}
