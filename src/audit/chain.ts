/**
 * The audit hash chain. Every record carries `seq` (continuous, also across rotated files),
 * `prev` (the previous record's hash) and `hash`: sha256 of the record's line as written, without
 * its `hash` member (the text up to `,"hash":` with the closing brace put back). That text holds
 * `seq` and `prev`, so editing a record breaks its hash, and deleting or reordering records
 * breaks `seq` and `prev`. Pure: no I/O.
 *
 * Files written before the fourteenth pass hashed `prev` + the record's canonical JSON (keys
 * sorted) instead, which cost a sorted copy and a second serialisation per record; their lines
 * still verify (`verifyStep` tries the line's own text first, then the canonical form).
 *
 * The chain is unkeyed: it shows accidental or partial tampering, not a rewrite of the whole
 * tail. The sink logs the chain head on reopen/close so an outside copy can anchor it.
 */
import { hash } from 'node:crypto';

export const GENESIS = '0'.repeat(64);

export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

export type ChainProblem = 'hash-mismatch' | 'broken-link' | 'seq-gap' | 'bad-json';

export type VerifyResult =
  | { ok: true; count: number; head: ChainHead | null }
  | {
      ok: false;
      /** 1-based line number of the first record that fails. */
      line: number;
      problem: ChainProblem;
      /** The failing record's seq when it could be read. */
      seq: number | null;
      /** The seq that was expected there (seq-gap: records before it are missing). */
      expectedSeq: number | null;
      /** Records that verified before the failure. */
      count: number;
    };

export class AuditChain {
  private prev: string;
  private seq: number;

  /** `start` continues an existing chain: the next record gets start.seq + 1. */
  constructor(start: ChainHead | string = GENESIS) {
    if (typeof start === 'string') {
      this.prev = start;
      this.seq = 0;
    } else {
      this.prev = start.hash;
      this.seq = start.seq;
    }
  }

  get head(): ChainHead {
    return { seq: this.seq, hash: this.prev };
  }

  /** The JSON line (no newline) for `record`, with `seq`, `prev` and `hash` appended. */
  seal(record: object): string {
    // The chain owns these three names; a record that carried them would not verify.
    const body: Record<string, unknown> = {};
    for (const k of Object.keys(record)) if (k !== 'seq' && k !== 'prev' && k !== 'hash') body[k] = (record as Record<string, unknown>)[k];
    return this.sealOwned(body);
  }

  /**
   * seal() for a record built for this call alone (the sink's): `seq` and `prev` are added to it
   * in place, saving a copy per record. One that already carries a chain name is copied after all.
   */
  sealOwned(record: Record<string, unknown>): string {
    if (Object.hasOwn(record, 'seq') || Object.hasOwn(record, 'prev') || Object.hasOwn(record, 'hash')) return this.seal(record);
    const seq = this.seq + 1;
    record.seq = seq;
    record.prev = this.prev;
    // One serialisation: the record's own key order (`time` first), hashed as it will be read
    // back, and the hash spliced in before its closing brace.
    const json = JSON.stringify(record);
    const hash = hashText(json);
    this.seq = seq;
    this.prev = hash;
    return `${json.slice(0, -1)}${HASH_KEY}${hash}"}`;
  }
}

const HASH_KEY = ',"hash":"';
/** `,"hash":"` + 64 hex digits + `"}`: how every sealed line ends. */
const HASH_TAIL = HASH_KEY.length + 64 + 2;

/** The hash of a record's text (its line without the `hash` member). */
function hashText(json: string): string {
  // One-shot hash of one string: no Hash object and an update() crossing per record.
  return hash('sha256', json, 'hex');
}

/**
 * Whether `line` is sealed by its own text: it ends in `,"hash":"<h>"}` and h is the sha256 of
 * the text before that with the closing brace put back.
 */
function sealedByText(line: string, h: string): boolean {
  const at = line.length - HASH_TAIL;
  if (at < 1 || !line.startsWith(HASH_KEY, at) || !line.startsWith(h, at + HASH_KEY.length) || !line.endsWith('"}')) return false;
  return hashText(`${line.slice(0, at)}}`) === h;
}

/** The hash of the earlier files' records: sha256 of `prev` + the canonical JSON of the record without `hash`. */
export function hashRecord(prev: string, bodyWithoutHash: object): string {
  return hash('sha256', prev + canonicalJson(bodyWithoutHash), 'hex');
}

/**
 * JSON with object keys sorted at every depth, so the hash does not depend on key order. It is
 * exactly the text of `JSON.stringify(value, sortingReplacer)`, the definition the files were
 * sealed with: toJSON first, undefined/functions/symbols dropped from objects and null in arrays,
 * and integer-like keys first in numeric order, as JSON.stringify orders any object's keys.
 * Built as a copy with every object's keys inserted in that order, then one native
 * JSON.stringify: no string built key by key (a record's text was being put together and
 * flattened several times over, some 30 KiB of garbage per session).
 * test/unit/audit/chain.test.ts holds it to that definition on random values.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortedCopy(value, ''));
}

/**
 * `value` as JSON.stringify will see it after toJSON, with each object rebuilt in canonical key
 * order. Function and symbol values become undefined (dropped from objects, null in arrays)
 * here, so the copy holds no toJSON that JSON.stringify could call a second time.
 */
function sortedCopy(value: unknown, key: string): unknown {
  let v = value;
  if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
    v = (v as { toJSON(k: string): unknown }).toJSON(key);
  }
  if (typeof v === 'function' || typeof v === 'symbol') return undefined;
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    const out: unknown[] = new Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = sortedCopy(v[i], String(i));
    return out;
  }
  const obj = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of sortedKeys(obj)) {
    const c = sortedCopy(obj[k], k);
    if (c === undefined) continue;
    // An own "__proto__" (JSON.parse makes one) must stay a key, not become the copy's prototype.
    if (k === '__proto__') Object.defineProperty(out, k, { value: c, enumerable: true, writable: true, configurable: true });
    else out[k] = c;
  }
  return out;
}

const ARRAY_INDEX = /^(?:0|[1-9]\d{0,9})$/;

/**
 * Keys sorted by code unit, except that array-index keys come first in numeric order (as in any
 * JS object). Records come in a handful of shapes (connect, login, command, ...): the sorted
 * order of the last SHAPES key lists is kept and found again by comparing the lists, which is
 * cheaper than sorting each record's keys anew.
 */
function sortedKeys(obj: object): string[] {
  const keys = Object.keys(obj);
  if (keys.length < 2) return keys;
  for (const s of shapes) if (sameKeys(s.keys, keys)) return s.sorted;
  const sorted = sortKeys(keys.slice());
  if (shapes.length >= SHAPES) shapes.pop();
  shapes.unshift({ keys, sorted });
  return sorted;
}

const SHAPES = 32;
const shapes: Array<{ readonly keys: readonly string[]; readonly sorted: string[] }> = [];

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sortKeys(keys: string[]): string[] {
  // Object.keys lists array-index keys first: none unless the first key starts with a digit.
  const c = keys[0]!.charCodeAt(0);
  if (c < 0x30 || c > 0x39) return keys.sort();
  const index: string[] = [];
  const named: string[] = [];
  for (const k of keys) (ARRAY_INDEX.test(k) && Number(k) < 4294967295 ? index : named).push(k);
  named.sort();
  if (index.length === 0) return named;
  index.sort((a, b) => Number(a) - Number(b));
  return index.concat(named);
}

interface ChainedRecord {
  seq: number;
  prev: string;
  hash: string;
  [k: string]: unknown;
}

/** Parses one line as a chained record, or null when it is not one. */
export function parseChained(line: string): ChainedRecord | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null; // not JSON: the caller reports bad-json with the line number
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const r = v as Record<string, unknown>;
  if (!Number.isSafeInteger(r.seq) || typeof r.prev !== 'string' || typeof r.hash !== 'string') return null;
  return r as ChainedRecord;
}

/**
 * Checks one file's lines. Without `expect`, the first record's `prev`/`seq` are taken as the
 * start (the file may follow a rotated-away one); with it (the previous file's head, when files
 * are verified oldest first) the first record must continue that head. Blank lines are skipped.
 */
export function verifyLines(lines: Iterable<string>, expect: ChainHead | null = null): VerifyResult {
  let head: ChainHead | null = expect;
  let count = 0;
  let lineNo = 0;
  for (const line of lines) {
    lineNo++;
    const step = verifyStep(line, head);
    if (step === 'blank') continue;
    if (!step.ok) return { ok: false, line: lineNo, count, ...step.failure };
    head = step.head;
    count++;
  }
  return { ok: true, count, head };
}

type StepFailure = { problem: ChainProblem; seq: number | null; expectedSeq: number | null };

/** One line against the running head; shared by verifyLines and the streaming CLI. */
export function verifyStep(
  line: string,
  head: ChainHead | null,
): 'blank' | { ok: true; head: ChainHead } | { ok: false; failure: StepFailure } {
  if (line.trim() === '') return 'blank';
  const expectedSeq = head === null ? null : head.seq + 1;
  const rec = parseChained(line);
  if (rec === null) return { ok: false, failure: { problem: 'bad-json', seq: null, expectedSeq } };
  const { hash, ...body } = rec;
  // The line's own text first (every record since the fourteenth pass); then the canonical JSON
  // the earlier files were sealed with. Either is a sha256 preimage an editor would have to find.
  if (!sealedByText(line, hash) && hashRecord(rec.prev, body) !== hash) {
    return { ok: false, failure: { problem: 'hash-mismatch', seq: rec.seq, expectedSeq } };
  }
  if (head !== null) {
    // seq first: a deleted record reads better as "seq N missing" than as a broken link.
    if (rec.seq !== head.seq + 1) return { ok: false, failure: { problem: 'seq-gap', seq: rec.seq, expectedSeq } };
    if (rec.prev !== head.hash) return { ok: false, failure: { problem: 'broken-link', seq: rec.seq, expectedSeq } };
  }
  return { ok: true, head: { seq: rec.seq, hash } };
}
