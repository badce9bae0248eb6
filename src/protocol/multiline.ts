/**
 * The end of a multi-line reply (RFC 1939 section 3): a line holding a single ".", i.e. the bytes
 * CRLF "." CRLF, where the first CRLF may be the status line's own (an empty body).
 *
 * TerminatorScanner is on the hot path of every RETR: it runs the native `indexOf` over each chunk
 * and carries only how much of the terminator the previous chunk ended with (0..4 bytes), so the
 * body is never copied, split into lines or un-stuffed.
 *
 * The search is for ".\r\n", then the two bytes before it are checked for CRLF. Node searches a
 * short needle by finding its first byte with memchr: for "\r\n.\r\n" that stopped at every line
 * end (every ~78 bytes of mail), for ".\r\n" only at dots, which base64 attachments never contain
 * and plain text far less often than line ends. Text with many lines ending in "." would pay a
 * crossing into native code per such line, so after two of those in a chunk the rest of it is
 * searched for the whole terminator instead.
 */

const DOT_CRLF = Buffer.from('.\r\n', 'latin1');
const TERMINATOR = Buffer.from('\r\n.\r\n', 'latin1');
/** Lines ending in "." (not terminators) tolerated per chunk before searching for the whole terminator. */
const DOT_MISSES = 2;
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
/** State meaning "at the start of a line": as if CRLF had just been seen. */
const LINE_START = 2;

/**
 * One step of the matcher for "\r\n.\r\n". `state` is the length of the longest suffix of the
 * input so far that is a prefix of the terminator; 5 means the terminator is complete.
 */
function step(state: number, b: number): number {
  switch (state) {
    case 0:
      return b === CR ? 1 : 0;
    case 1:
      return b === LF ? 2 : b === CR ? 1 : 0;
    case 2:
      return b === DOT ? 3 : b === CR ? 1 : 0;
    case 3:
      return b === CR ? 4 : 0;
    default: // 4: "\r\n.\r"
      return b === LF ? 5 : b === CR ? 1 : 0;
  }
}

export class TerminatorScanner {
  private state = LINE_START;

  /** A body begins, at the start of a line (right after the status line's CRLF). */
  reset(): void {
    this.state = LINE_START;
  }

  /**
   * Offset just past the terminating ".\r\n", or -1 when this chunk does not complete it.
   * After a hit, call reset() before scanning the next body.
   */
  scan(buf: Buffer, start = 0): number {
    const end = buf.length;
    // A terminator that began in an earlier chunk (or in the virtual CRLF at a line start) ends
    // within the first 4 bytes of this one: walk those bytes through the matcher.
    const edge = Math.min(end, start + 4);
    let state = this.state;
    for (let i = start; i < edge; i++) {
      state = step(state, buf[i]!);
      if (state === 5) {
        this.state = 0;
        return i + 1;
      }
    }
    if (edge === end) {
      this.state = state;
      return -1;
    }
    // A terminator whose dot is among the first two bytes was found (or ruled out) by the walk
    // above; any other has its CRLF inside this chunk, right before the dot.
    let misses = 0;
    for (let dot = buf.indexOf(DOT_CRLF, start + 2); dot >= 0; dot = buf.indexOf(DOT_CRLF, dot + 1)) {
      if (buf[dot - 1] === LF && buf[dot - 2] === CR) {
        this.state = 0;
        return dot + 3;
      }
      if (++misses === DOT_MISSES) {
        // The next terminator's dot is past this one, so it starts at dot - 1 or later.
        const at = buf.indexOf(TERMINATOR, dot - 1);
        if (at >= 0) {
          this.state = 0;
          return at + TERMINATOR.length;
        }
        break;
      }
    }
    // No match: the carried state depends only on the last 4 bytes, all inside this chunk.
    state = 0;
    for (let i = end - 4; i < end; i++) state = step(state, buf[i]!);
    this.state = state;
    return -1;
  }
}

/**
 * Lines of a small multi-line body (CAPA, UIDL), given WITHOUT the final ".\r\n": split on CRLF
 * (a lone LF is tolerated), with the leading dot of dot-stuffed lines removed. Latin1 strings.
 */
export function unstuffLines(body: Buffer): string[] {
  const text = body.toString('latin1');
  if (text.length === 0) return [];
  const lines = text.split('\n');
  // A body normally ends with CRLF, which leaves one empty element after the split.
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((line) => {
    const bare = line.endsWith('\r') ? line.slice(0, -1) : line;
    return bare.startsWith('.') ? bare.slice(1) : bare;
  });
}

/** A line as it goes on the wire inside a multi-line body: a leading "." is doubled. */
export function dotStuff(line: string): string {
  return line.startsWith('.') ? `.${line}` : line;
}
