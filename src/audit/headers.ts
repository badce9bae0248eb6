/**
 * Captures selected header fields (logging.auditHeaders) from the first bytes of a relayed
 * RETR/TOP body. The relay pushes chunks as they pass; the capture copies at most `maxBytes`
 * into a fixed buffer, says when it has seen the end of the header, and never holds the rest
 * of the message. Pure: no I/O.
 */

/** Enough for the header of nearly every message; a longer header is parsed as far as it got. */
export const DEFAULT_HEADER_BYTES = 16 * 1024;
/** One audit value stays readable and bounded. */
const MAX_VALUE_CHARS = 256;

export class HeaderCapture {
  private readonly buf: Buffer;
  private len = 0;
  private finished = false;
  private readonly wanted: Map<string, string>;

  /** `names` as configured ("Message-ID"); matched case-insensitively, reported as configured. */
  constructor(names: readonly string[], maxBytes = DEFAULT_HEADER_BYTES) {
    this.wanted = new Map(names.map((n) => [n.toLowerCase(), n]));
    this.buf = Buffer.alloc(names.length === 0 ? 0 : maxBytes);
    this.finished = names.length === 0;
  }

  /** True once the header ended or the cap was reached: the caller may stop pushing. */
  get done(): boolean {
    return this.finished;
  }

  /** Feeds the next body chunk (dot-stuffed, as relayed); returns `done`. */
  push(chunk: Buffer): boolean {
    if (this.finished) return true;
    const start = Math.max(0, this.len - 3);
    const n = chunk.copy(this.buf, this.len, 0, Math.min(chunk.length, this.buf.length - this.len));
    this.len += n;
    if (headerEnd(this.buf.subarray(0, this.len), start) !== -1 || this.len >= this.buf.length) {
      this.finished = true;
    }
    return this.finished;
  }

  /** The wanted fields found so far (first occurrence of each), unfolded and cleaned. */
  result(): Record<string, string> {
    const out: Record<string, string> = {};
    if (this.wanted.size === 0) return out;
    const head = this.buf.subarray(0, this.len);
    const end = headerEnd(head, 0);
    const text = head.subarray(0, end === -1 ? head.length : end).toString('utf8');
    for (const field of unfold(text)) {
      const colon = field.indexOf(':');
      if (colon <= 0) continue;
      const name = this.wanted.get(field.slice(0, colon).trim().toLowerCase());
      if (name === undefined || name in out) continue;
      out[name] = clean(field.slice(colon + 1));
    }
    return out;
  }
}

/** Offset of the blank line (or a lone "." terminator line) that ends the header, or -1. */
function headerEnd(b: Buffer, from: number): number {
  if (b.length >= 3 && b[0] === 0x2e && b[1] === 0x0d && b[2] === 0x0a) return 0;
  for (let i = from; i < b.length; i++) {
    if (b[i] !== 0x0a) continue;
    const next = b[i + 1];
    if (next === 0x0a) return i + 1;
    if (next === 0x0d && b[i + 2] === 0x0a) return i + 1;
    // "\n.\r\n": the message had a header and no body (TOP n 0 of a header-only message).
    if (next === 0x2e && b[i + 2] === 0x0d && b[i + 3] === 0x0a) return i + 1;
  }
  return -1;
}

/** RFC 5322 §2.2.3: a line starting with whitespace continues the previous field. */
function unfold(text: string): string[] {
  const fields: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if ((line.startsWith(' ') || line.startsWith('\t')) && fields.length > 0) {
      fields[fields.length - 1] += line;
    } else if (line !== '') {
      fields.push(line);
    }
  }
  return fields;
}

function clean(value: string): string {
  // Control characters would only make the table unreadable; JSON escaping already keeps the record intact.
  const v = value.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return v.length > MAX_VALUE_CHARS ? `${v.slice(0, MAX_VALUE_CHARS)}…` : v;
}
