/**
 * Collecting config problems: YAML paths, what was found, and the line each one sits on.
 * Validation never stops at the first problem; everything wrong is reported in one pass.
 * Every report is built here, so this is where secrets are redacted (redact.ts): a rejected
 * token or a Redis URL's password never reaches `--check`, start-up errors or `reload-rejected`.
 */
import { isSecretPath, redactCredentials, redactValue } from './redact.ts';
import type { Problem } from './schema.ts';

export type Path = readonly (string | number)[];
export type LineOf = (path: Path) => number | undefined;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `listeners[1].port`, `tls.sni["mail.example.org"].cert`; the empty path is `(root)`. */
export function formatPath(path: Path): string {
  if (path.length === 0) return '(root)';
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (IDENTIFIER.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** How a found value reads in a message: strings quoted, containers by kind. */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

/** `describe`, but a value at a secret path (or a URL with a password) is shown redacted. */
export function describeAt(path: Path, v: unknown): string {
  if (typeof v === 'string') return isSecretPath(path) ? redactValue(path, v) : JSON.stringify(redactValue(path, v));
  if (isSecretPath(path) && (typeof v === 'number' || typeof v === 'boolean')) return '<redacted>';
  return describe(v);
}

export class Problems {
  readonly list: Problem[] = [];

  constructor(private readonly lineOf: LineOf | undefined) {}

  add(path: Path, message: string, expected: string): void {
    const line = this.lineFor(path);
    // Messages are written by validators: mask any URL credentials one of them interpolated.
    const safe = redactCredentials(message);
    this.list.push(line === undefined
      ? { path: formatPath(path), message: safe, expected }
      : { path: formatPath(path), message: safe, expected, line });
  }

  found(path: Path, value: unknown, expected: string): void {
    this.add(path, `found ${describeAt(path, value)}`, expected);
  }

  /** In file order (problems without a line first), so a reader can walk the YAML top to bottom. */
  sorted(): Problem[] {
    return [...this.list].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  }

  get count(): number {
    return this.list.length;
  }

  // A missing key has no line of its own: point at the nearest enclosing node that has one.
  private lineFor(path: Path): number | undefined {
    if (this.lineOf === undefined) return undefined;
    for (let n = path.length; n >= 0; n--) {
      const line = this.lineOf(path.slice(0, n));
      if (line !== undefined) return line;
    }
    return undefined;
  }
}

/** Classic edit distance, for "did you mean" hints on unknown keys. */
export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + cost));
    }
    prev = cur;
  }
  return prev[b.length] as number;
}

/** The closest known key within distance 2 (case-insensitive), if any. */
export function suggestKey(unknown: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = 3;
  for (const key of known) {
    const d = levenshtein(unknown.toLowerCase(), key.toLowerCase());
    if (d < bestDistance) {
      best = key;
      bestDistance = d;
    }
  }
  return best;
}
