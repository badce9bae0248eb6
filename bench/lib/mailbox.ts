/**
 * Message content for the bench and the soak: CRLF line ends throughout (what
 * Dovecot serves as stored), lines that start with a dot now and then, and a
 * final CRLF so Dovecot adds nothing.
 */
import crypto from 'node:crypto';

function header(subject: string, id: string): string {
  return [
    'From: bench <bench@example.org>',
    'To: alice <alice@example.org>',
    `Subject: ${subject}`,
    `Message-ID: <${id}@bench.example.org>`,
    'Date: Mon, 23 Nov 2026 12:00:00 +0000',
    '',
    '',
  ].join('\r\n');
}

/** A message of exactly `size` bytes: a header, then a repeated 1 MiB block of 78-character lines. */
export function bulkMessage(size: number, name: string): Buffer {
  const head = Buffer.from(header(`bulk ${name}`, name));
  const lines: string[] = [];
  let blockSize = 0;
  for (let i = 0; blockSize < 1024 * 1024; i++) {
    const text = i % 50 === 0 ? `.dotted line ${i}` : `line ${i} `;
    const line = `${text}${'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(3).slice(0, 78 - text.length)}\r\n`;
    lines.push(line);
    blockSize += line.length;
  }
  const block = Buffer.from(lines.join(''));
  const out = Buffer.alloc(size);
  let pos = head.copy(out, 0);
  while (pos < size) pos += block.copy(out, pos, 0, Math.min(block.length, size - pos));
  // End on a whole line: overwrite the last bytes with "x...\r\n".
  out.fill(0x78, Math.max(head.length, size - 80), size - 2);
  out.write('\r\n', size - 2, 'latin1');
  return out;
}

/** A deterministic random source (xorshift32) so a failing soak can be replayed with its seed. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.state = x;
    return x / 0x100000000;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/**
 * A message of about `size` bytes with varied line lengths, some lines starting
 * with "." or being just ".", some empty, and random printable text.
 */
export function randomMessage(rng: Rng, size: number, name: string): Buffer {
  const parts: string[] = [header(`soak ${name}`, name)];
  let total = parts[0]!.length;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,;:-_=+/';
  const noise = crypto.randomBytes(4096).toString('latin1');
  while (total < size) {
    const kind = rng.next();
    let line: string;
    if (kind < 0.05) line = '.';
    else if (kind < 0.15) line = `.${'.'.repeat(rng.int(0, 2))}dot-leading ${rng.int(0, 1e6)}`;
    else if (kind < 0.2) line = '';
    else {
      const len = rng.int(1, 200);
      let s = '';
      const from = rng.int(0, noise.length - len - 1);
      for (let i = 0; i < len; i++) s += alphabet[noise.charCodeAt(from + i) % alphabet.length];
      line = s;
    }
    parts.push(`${line}\r\n`);
    total += line.length + 2;
  }
  return Buffer.from(parts.join(''), 'latin1');
}
