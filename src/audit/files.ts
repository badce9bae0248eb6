/**
 * Finding and reading an audit file with its rotations, for `npm run audit`. Handles
 * logrotate's numbered names (audit.log.1, audit.log.2.gz: larger is older) and dateext names
 * (audit.log-20240501[.gz]: larger is newer). gzip is read through zlib as a stream.
 */
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';

const NUMBERED = /^\.(\d{1,6})(\.gz)?$/;
const DATED = /^-(\d[\d-]*)(\.gz)?$/;
/** A line longer than this is not a record we wrote; it is yielded cut, and fails to parse. */
const MAX_LINE_CHARS = 16 * 1024 * 1024;

/** `file` and its rotations that exist, oldest first (the live file last). */
export async function listAuditFiles(file: string): Promise<string[]> {
  const dir = dirname(file);
  const base = basename(file);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const numbered: Array<{ n: number; name: string }> = [];
  const dated: string[] = [];
  let live = false;
  for (const name of entries) {
    if (name === base) {
      live = true;
      continue;
    }
    if (!name.startsWith(base)) continue;
    const suffix = name.slice(base.length);
    const num = NUMBERED.exec(suffix);
    if (num) numbered.push({ n: Number(num[1]), name });
    else if (DATED.test(suffix)) dated.push(name);
  }
  dated.sort();
  numbered.sort((a, b) => b.n - a.n || plainFirst(a.name, b.name));
  // audit.log.2 next to audit.log.2.gz: logrotate is compressing; the plain file is the complete one.
  const kept = numbered.filter((e, i) => i === 0 || numbered[i - 1]?.n !== e.n);
  const ordered = [...dated, ...kept.map((e) => e.name)];
  if (live) ordered.push(base);
  return ordered.map((name) => join(dir, name));
}

function plainFirst(a: string, b: string): number {
  return Number(a.endsWith('.gz')) - Number(b.endsWith('.gz'));
}

/** The file's lines (without "\n" or "\r\n"), gunzipped when the name ends in .gz. */
export async function* readLines(file: string): AsyncGenerator<string> {
  const raw = createReadStream(file);
  const input: Readable = file.endsWith('.gz')
    ? pipeline(raw, createGunzip(), () => undefined) // errors surface through the iterator below
    : raw;
  const decoder = new StringDecoder('utf8');
  let carry = '';
  for await (const chunk of input) {
    carry += decoder.write(chunk as Buffer);
    let from = 0;
    let nl: number;
    while ((nl = carry.indexOf('\n', from)) !== -1) {
      yield stripCr(carry.slice(from, nl));
      from = nl + 1;
    }
    carry = carry.slice(from);
    if (carry.length > MAX_LINE_CHARS) {
      yield carry;
      carry = '';
    }
  }
  carry += decoder.end();
  if (carry !== '') yield stripCr(carry);
}

function stripCr(s: string): string {
  return s.endsWith('\r') ? s.slice(0, -1) : s;
}
