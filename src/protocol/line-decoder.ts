/**
 * Incremental line framing for POP3 commands and status lines.
 *
 * Framing only: whether a line is a command, SASL data or something to ignore is the session's call.
 * Chunks are kept as a list (no concatenation on feed); a line is copied only when it spans chunks,
 * otherwise it is a view into the fed chunk. The LF search resumes where it stopped, so a line fed
 * one byte at a time costs O(length), not O(length²).
 */

export type LineEvent = { type: 'line'; line: Buffer } | { type: 'overflow' };

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);
// Compact the chunk list once this many consumed slots have piled up at its front.
const COMPACT_AFTER = 32;

export class LineDecoder {
  /** Longest acceptable line, counting its CRLF (or lone LF). Settable between lines. */
  maxLength: number;

  private chunks: Buffer[] = [];
  /** Index of the first live chunk; the slots before it are consumed. */
  private first = 0;
  /** Offset of the first unconsumed byte inside chunks[first]. */
  private head = 0;
  private total = 0;
  /** Where the LF search resumes: everything before (scanChunk, scanFrom) is known to hold no LF. */
  private scanChunk = 0;
  private scanFrom = 0;
  /** True after an overflow: bytes are dropped up to and including the next LF. */
  private skipping = false;

  constructor(maxLength: number) {
    if (!Number.isInteger(maxLength) || maxLength < 1) {
      throw new RangeError(`LineDecoder maxLength must be a positive integer, got ${maxLength}`);
    }
    this.maxLength = maxLength;
  }

  /** Bytes held and not yet returned. */
  get buffered(): number {
    return this.total;
  }

  /** The returned lines may share memory with `chunk`: do not reuse it after feeding. */
  feed(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  next(): LineEvent | null {
    for (;;) {
      if (this.skipping) {
        const lf = this.findLf();
        if (lf === null) {
          // Discard as we go so an endless line costs no memory.
          this.dropAll();
          return null;
        }
        this.consume(lf.length);
        this.skipping = false;
        continue;
      }
      const lf = this.findLf();
      if (lf === null) {
        // The line will be at least total + 1 bytes (its LF still to come).
        if (this.total >= this.maxLength) {
          this.dropAll();
          this.skipping = true;
          return { type: 'overflow' };
        }
        return null;
      }
      if (lf.length > this.maxLength) {
        this.consume(lf.length);
        return { type: 'overflow' };
      }
      return { type: 'line', line: this.takeLine(lf.length) };
    }
  }

  /** Drop everything held (STLS: plaintext sent after the command must never be parsed). */
  clear(): void {
    this.dropAll();
    this.skipping = false;
  }

  /** Return and drop the unconsumed bytes, e.g. to hand them to a TLS handshake or a body reader. */
  takeBuffered(): Buffer {
    const live = this.liveChunks();
    const out = live.length === 1 ? live[0]! : live.length === 0 ? EMPTY : Buffer.concat(live, this.total);
    this.clear();
    return out;
  }

  private liveChunks(): Buffer[] {
    const live = this.chunks.slice(this.first);
    if (live.length > 0 && this.head > 0) live[0] = live[0]!.subarray(this.head);
    return live;
  }

  /** Length of the pending line including its LF, or null when no LF is buffered yet. */
  private findLf(): { length: number } | null {
    for (let i = this.scanChunk; i < this.chunks.length; i++) {
      const chunk = this.chunks[i]!;
      const from = i === this.scanChunk ? this.scanFrom : 0;
      const at = chunk.indexOf(LF, from);
      if (at >= 0) {
        this.scanChunk = i;
        this.scanFrom = at;
        return { length: this.offsetOf(i, at) + 1 };
      }
    }
    this.scanChunk = this.chunks.length;
    this.scanFrom = 0;
    return null;
  }

  /** Logical offset (from the first unconsumed byte) of byte `at` of chunk `index`. */
  private offsetOf(index: number, at: number): number {
    if (index === this.first) return at - this.head;
    let offset = this.chunks[this.first]!.length - this.head;
    for (let i = this.first + 1; i < index; i++) offset += this.chunks[i]!.length;
    return offset + at;
  }

  /** Remove `length` bytes (a whole line with its LF) and return them without CR/LF. */
  private takeLine(length: number): Buffer {
    const firstChunk = this.chunks[this.first]!;
    let line: Buffer;
    if (this.head + length <= firstChunk.length) {
      line = firstChunk.subarray(this.head, this.head + length - 1);
    } else {
      line = Buffer.allocUnsafe(length - 1);
      let written = 0;
      for (let i = this.first; written < length - 1; i++) {
        const chunk = this.chunks[i]!;
        const start = i === this.first ? this.head : 0;
        const end = Math.min(chunk.length, start + (length - 1 - written));
        written += chunk.copy(line, written, start, end);
      }
    }
    this.consume(length);
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    return line;
  }

  private consume(length: number): void {
    this.total -= length;
    let left = length;
    while (left > 0) {
      const chunk = this.chunks[this.first]!;
      const available = chunk.length - this.head;
      if (left < available) {
        this.head += left;
        break;
      }
      left -= available;
      this.chunks[this.first] = EMPTY; // let the chunk be collected
      this.first++;
      this.head = 0;
    }
    // Keep the search cursor at or after the first unconsumed byte.
    if (this.scanChunk < this.first || (this.scanChunk === this.first && this.scanFrom < this.head)) {
      this.scanChunk = this.first;
      this.scanFrom = this.head;
    }
    this.compact();
  }

  private dropAll(): void {
    this.chunks = [];
    this.first = 0;
    this.head = 0;
    this.total = 0;
    this.scanChunk = 0;
    this.scanFrom = 0;
  }

  private compact(): void {
    if (this.first === this.chunks.length) {
      this.chunks.length = 0;
    } else if (this.first < COMPACT_AFTER || this.first * 2 < this.chunks.length) {
      return;
    } else {
      this.chunks = this.chunks.slice(this.first);
    }
    this.scanChunk -= this.first;
    this.first = 0;
  }
}
