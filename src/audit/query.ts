/**
 * Filtering and printing audit records for `npm run audit`. Pure: the CLI reads the files and
 * feeds parsed records through here, so this is testable without any file.
 */
import { parseDuration } from '../util/duration.ts';
import { cidrContains, parseCidr } from '../util/cidr.ts';
import type { Pseudonymizer } from './pseudonymize.ts';

/** A parsed audit line; every field is optional because files may hold older or foreign records. */
export interface AuditRecord {
  time?: string;
  event?: string;
  session?: string;
  listener?: string;
  client?: string;
  tls?: string | false;
  user?: string;
  command?: string;
  args?: string;
  mechanism?: string;
  result?: string;
  reason?: string;
  msg?: number;
  uid?: string | null;
  size?: number | null;
  octets?: number;
  headers?: Record<string, string>;
  deleted?: Array<{ msg: number; uid?: string | null }>;
  notDeleted?: Array<{ msg: number; uid?: string | null }>;
  bytesIn?: number;
  bytesOut?: number;
  durationMs?: number;
  signal?: string;
  detail?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface RecordFilter {
  user?: string;
  /** An address or a CIDR range. */
  ip?: string;
  /** One event name or several. */
  event?: string | readonly string[];
  uid?: string;
  /** Epoch ms, inclusive. */
  since?: number;
  /** Epoch ms, exclusive. */
  until?: number;
  /** When set, --user also matches the name's pseudonym. */
  pseudonymize?: Pseudonymizer | null;
}

const WEEKS = /^(\d+)w$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?$/;

/** "24h", "90m", "1h30m", "7d", "2w" (that long before `now`) or an ISO date; null when neither. */
export function parseSince(s: string, now: number = Date.now()): number | null {
  const weeks = WEEKS.exec(s);
  if (weeks) return now - Number(weeks[1]) * 7 * 86_400_000;
  const ms = parseDuration(s);
  if (ms !== null) return now - ms;
  if (!ISO_DATE.test(s)) return null;
  const t = Date.parse(s.replace(' ', 'T'));
  return Number.isNaN(t) ? null : t;
}

/** The record in one line, or null for a blank or non-JSON line. */
export function parseRecordLine(line: string): AuditRecord | null {
  if (line.trim() === '') return null;
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as AuditRecord) : null;
  } catch {
    return null; // a torn or foreign line: skipped by queries, reported by --verify
  }
}

/** A predicate for `f`; compile once, apply per record (the CLI streams). */
export function compileFilter(f: RecordFilter): (r: AuditRecord) => boolean {
  const users = f.user === undefined ? null : new Set([f.user, ...(f.pseudonymize ? [f.pseudonymize(f.user)] : [])]);
  const range = f.ip === undefined ? null : parseCidr(f.ip);
  if (f.ip !== undefined && range === null) throw new RangeError(`not an address or CIDR range: ${f.ip}`);
  const events = f.event === undefined ? null : new Set(typeof f.event === 'string' ? [f.event] : f.event);
  return (r) => {
    if (events && (r.event === undefined || !events.has(r.event))) return false;
    if (users && !matchesUser(r, users)) return false;
    if (range && !(typeof r.client === 'string' && cidrContains(range, clientIp(r.client)))) return false;
    if (f.uid !== undefined && !matchesUid(r, f.uid)) return false;
    if (f.since !== undefined || f.until !== undefined) {
      const t = typeof r.time === 'string' ? Date.parse(r.time) : NaN;
      if (Number.isNaN(t)) return false;
      if (f.since !== undefined && t < f.since) return false;
      if (f.until !== undefined && t >= f.until) return false;
    }
    return true;
  };
}

export function filterRecords(records: Iterable<AuditRecord>, f: RecordFilter): AuditRecord[] {
  const keep = compileFilter(f);
  const out: AuditRecord[] = [];
  for (const r of records) if (keep(r)) out.push(r);
  return out;
}

function matchesUser(r: AuditRecord, users: Set<string>): boolean {
  if (typeof r.user === 'string' && users.has(r.user)) return true;
  // A USER command before the name was accepted carries it only as its argument.
  if (r.command === 'USER' && typeof r.args === 'string' && users.has(r.args)) return true;
  const d = r.detail;
  if (d === undefined || d === null || typeof d !== 'object') return false;
  if (typeof d.user === 'string' && users.has(d.user)) return true;
  return Array.isArray(d.users) && d.users.some((u) => typeof u === 'string' && users.has(u));
}

function matchesUid(r: AuditRecord, uid: string): boolean {
  if (r.uid === uid) return true;
  const inList = (l: unknown) => Array.isArray(l) && l.some((m) => m !== null && typeof m === 'object' && m.uid === uid);
  return inList(r.deleted) || inList(r.notDeleted);
}

/** "1.2.3.4:5" → "1.2.3.4"; "[::1]:5" or "::1:5" → "::1" (the contract writes ip:port). */
export function clientIp(client: string): string {
  if (client.startsWith('[')) {
    const end = client.indexOf(']');
    return end === -1 ? client : client.slice(1, end);
  }
  const colon = client.lastIndexOf(':');
  return colon === -1 ? client : client.slice(0, colon);
}

interface Column {
  title: string;
  max: number;
  cell(r: AuditRecord): string;
}

const COLUMNS: readonly Column[] = [
  { title: 'TIME (UTC)', max: 19, cell: (r) => formatTime(r.time) },
  { title: 'EVENT', max: 10, cell: (r) => str(r.event) },
  { title: 'USER', max: 32, cell: (r) => str(r.user) },
  { title: 'CLIENT', max: 47, cell: (r) => str(r.client) },
  { title: 'WHAT', max: 30, cell: what },
  { title: 'UID', max: 24, cell: uidCell },
  { title: 'RESULT', max: 10, cell: (r) => str(r.result) },
  { title: 'DETAIL', max: 100, cell: detailCell },
];

/** An aligned table, one row per record; cells longer than their column end in "…". */
export function formatTable(records: readonly AuditRecord[]): string {
  const rows = records.map((r) => COLUMNS.map((c) => clip(escapeForTerminal(c.cell(r)), c.max)));
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const render = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [render(COLUMNS.map((c) => c.title)), ...rows.map(render)].join('\n') + '\n';
}

function what(r: AuditRecord): string {
  switch (r.event) {
    case 'command': {
      const arg = r.msg !== undefined ? String(r.msg) : (r.args ?? r.mechanism ?? '');
      return `${str(r.command)}${arg === '' ? '' : ` ${arg}`}`;
    }
    case 'login':
      return r.mechanism ? `AUTH ${r.mechanism}` : 'login';
    case 'policy':
      return r.command ?? '-';
    case 'logout': {
      const kept = r.notDeleted?.length ?? 0;
      return `deleted ${r.deleted?.length ?? 0}${kept > 0 ? `, not deleted ${kept}` : ''}`;
    }
    case 'disconnect':
      return r.durationMs === undefined ? '-' : `after ${formatMs(r.durationMs)}`;
    case 'signal':
      return str(r.signal);
    case 'connect':
      return r.tls ? String(r.tls) : 'plaintext';
    default:
      return r.command ?? '-';
  }
}

function uidCell(r: AuditRecord): string {
  if (typeof r.uid === 'string') return r.uid;
  if (r.event === 'logout' && r.deleted && r.deleted.length > 0) {
    return r.deleted.map((m) => m.uid ?? `#${m.msg}`).join(',');
  }
  return '-';
}

function detailCell(r: AuditRecord): string {
  const parts: string[] = [];
  if (r.reason) parts.push(r.reason);
  if (typeof r.octets === 'number') parts.push(formatBytes(r.octets));
  else if (typeof r.size === 'number') parts.push(`size ${formatBytes(r.size)}`);
  if (r.event === 'disconnect') parts.push(`in ${formatBytes(r.bytesIn ?? 0)}, out ${formatBytes(r.bytesOut ?? 0)}`);
  if (r.headers) for (const [k, v] of Object.entries(r.headers)) parts.push(`${k}: ${v}`);
  if (r.event === 'signal' && r.detail) {
    for (const [k, v] of Object.entries(r.detail)) parts.push(`${k}=${Array.isArray(v) ? v.length : String(v)}`);
  }
  return parts.length === 0 ? '' : parts.join('; ');
}

function formatTime(t: unknown): string {
  if (typeof t !== 'string') return '-';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? t : d.toISOString().slice(0, 19).replace('T', ' ');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function formatMs(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  return m < 60 ? `${m}m${Math.round((ms % 60_000) / 1000)}s` : `${Math.floor(m / 60)}h${m % 60}m`;
}

function str(v: unknown): string {
  return v === undefined || v === null || v === '' ? '-' : String(v);
}

/** Records hold no newlines we wrote, but a foreign file could: keep one row per record. */
/**
 * Code points that must not reach the operator's terminal as they are: C0, DEL and C1
 * controls (U+009B is a one-byte CSI: escape sequences), format characters (Cf: the bidi
 * marks, embeddings, overrides and isolates U+200E/F, U+202A–E, U+2066–9, U+061C, and
 * zero-width ones), lone surrogates, and the line/paragraph separators U+2028/2029.
 * Audit fields come from unauthenticated clients (a login name), so every cell goes through this.
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}\\]/gu;

/**
 * Each unsafe code point as `\xNN` (below U+0100) or `\u{NNNN}`; a backslash doubled, so an
 * escape in the output is never confused with the same characters typed by a client.
 */
export function escapeForTerminal(s: string): string {
  return s.replace(UNSAFE, (ch) => {
    if (ch === '\\') return '\\\\';
    const cp = ch.codePointAt(0) as number;
    return cp < 0x100 ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
  });
}

function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
