/**
 * Value specs: each knows what it expects, checks one YAML value and records problems at its
 * path. Composite specs (lists, nullable) report per item, so `allow[3]` points at the bad verb.
 * Each spec also carries its JSON Schema fragment, so the shipped schema is derived from the very
 * objects that validate (see document-schema.ts).
 */
import { resolve } from 'node:path';
import { DURATION_PATTERN, parseDuration } from '../util/duration.ts';
import { parseSize, SIZE_PATTERN } from '../util/size.ts';
import { isValidCidr } from '../util/cidr.ts';
import { hasNestedQuantifier } from './regex-nesting.ts';
import { KNOWN_VERBS } from './schema.ts';
import type { Path, Problems } from './problems.ts';
import { anyCase, described, orNull, type JsonSchema } from './json-schema.ts';

export const INVALID: unique symbol = Symbol('invalid');
export type Checked<T> = T | typeof INVALID;

export interface Spec<T> {
  readonly expected: string;
  /** What an editor may know of a valid value (it may be looser than `check`, never stricter). */
  readonly schema: JsonSchema;
  /** The converted value, or INVALID once the problem has been recorded. */
  check(v: unknown, path: Path, p: Problems): Checked<T>;
}

/**
 * A spec for a single value: one problem, `found X`, when `parse` refuses it. Without `schema`
 * the value is unconstrained for editors, which the schema drift test reports.
 */
export function spec<T>(expected: string, parse: (v: unknown) => Checked<T>, schema: JsonSchema = {}): Spec<T> {
  return {
    expected,
    schema: described(schema, expected),
    check(v, path, p) {
      const out = parse(v);
      if (out === INVALID) p.found(path, v, expected);
      return out;
    },
  };
}

/** Refines a spec's result with an extra condition, reported with the same "expected". */
export function where<T>(base: Spec<T>, expected: string, ok: (v: T) => boolean): Spec<T> {
  return {
    expected,
    schema: described(base.schema, expected),
    check(v, path, p) {
      const probe = base.check(v, path, p);
      if (probe === INVALID) return INVALID;
      if (ok(probe)) return probe;
      p.found(path, v, expected);
      return INVALID;
    },
  };
}

// Control characters would end up in log lines or, worse, in protocol replies.
const CONTROL = /[\u0000-\u001f\u007f]/;
const NO_CONTROL = '[^\\u0000-\\u001f\\u007f]*';
/** Some visible character, no control characters. */
const TEXT_SCHEMA = { type: 'string', pattern: `^${NO_CONTROL}\\S${NO_CONTROL}$` };

export const text = spec<string>('a non-empty string', (v) =>
  typeof v === 'string' && v.trim() !== '' && !CONTROL.test(v) ? v : INVALID, TEXT_SCHEMA);

export const bool = spec<boolean>('true or false', (v) => (typeof v === 'boolean' ? v : INVALID), { type: 'boolean' });

export function int(min: number, max = Number.MAX_SAFE_INTEGER): Spec<number> {
  const expected = max === Number.MAX_SAFE_INTEGER
    ? `an integer of at least ${min}`
    : `an integer from ${min} to ${max}`;
  return spec(expected, (v) =>
    typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max ? v : INVALID,
  max === Number.MAX_SAFE_INTEGER ? { type: 'integer', minimum: min } : { type: 'integer', minimum: min, maximum: max });
}

/** Ports we connect to. */
export const port = spec<number>('a port number from 1 to 65535', (v) =>
  typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535 ? v : INVALID,
{ type: 'integer', minimum: 1, maximum: 65535 });

/** Ports we listen on: 0 asks the OS for a free one (tests; the "listening" log line tells which). */
export const bindPort = spec<number>('a port number from 1 to 65535 (or 0 for any free port)', (v) =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535 ? v : INVALID,
{ type: 'integer', minimum: 0, maximum: 65535 });

export const DURATION_EXPECTED = 'a duration like "250ms", "10s", "15m", "1h"';

// The bare number 0 is a duration too ("0" means the same in every unit); "above 0" is left to the validator.
const DURATION_SCHEMA = { type: 'string', pattern: DURATION_PATTERN };

export function duration(min: 0 | 1 = 0): Spec<number> {
  const expected = min === 0 ? DURATION_EXPECTED : `${DURATION_EXPECTED}, above 0`;
  return spec(expected, (v) => {
    const ms = parseDuration(v);
    return ms !== null && ms >= min ? ms : INVALID;
  }, min === 0 ? { anyOf: [DURATION_SCHEMA, { const: 0 }] } : DURATION_SCHEMA);
}

export function size(min = 0): Spec<number> {
  const base = 'a size like "64KiB", "10MiB", "512B" or a number of bytes';
  const expected = min === 0 ? base : min === 1 ? `${base}, above 0` : `${base}, at least ${min} bytes`;
  return spec(expected, (v) => {
    const bytes = parseSize(v);
    return bytes !== null && bytes >= min ? bytes : INVALID;
  }, { anyOf: [{ type: 'integer', minimum: min }, { type: 'string', pattern: SIZE_PATTERN }] });
}

export function oneOf<const T extends string>(values: readonly T[]): Spec<T> {
  return spec(`one of: ${values.join(', ')}`, (v) =>
    typeof v === 'string' && (values as readonly string[]).includes(v) ? (v as T) : INVALID, { enum: [...values] });
}

export function nullable<T>(base: Spec<T>): Spec<T | null> {
  return {
    expected: `${base.expected}, or null`,
    schema: described(orNull(base.schema), `${base.expected}, or null`),
    check: (v, path, p) => (v === null ? null : base.check(v, path, p)),
  };
}

/**
 * A list checked item by item; an empty `key:` (null) reads as an empty list. Duplicates are
 * dropped when `dedupe` is set (a verb listed twice means the same thing).
 */
export function listOf<T>(item: Spec<T>, opts: { min?: number; dedupe?: boolean; expected?: string } = {}): Spec<T[]> {
  const min = opts.min ?? 0;
  const expected = opts.expected
    ?? (min > 0 ? `a list (at least ${min}) of ${item.expected}` : `a list of ${item.expected}`);
  // null reads as [], so only a list that may be empty may be null.
  const list = { type: 'array', items: item.schema, ...(min > 0 ? { minItems: min } : {}) };
  return {
    expected,
    schema: described(min > 0 ? list : orNull(list), expected),
    check(v, path, p) {
      const items = v === null ? [] : v;
      if (!Array.isArray(items) || items.length < min) {
        p.found(path, v, expected);
        return INVALID;
      }
      const out: T[] = [];
      let bad = false;
      items.forEach((raw, i) => {
        const one = item.check(raw, [...path, i], p);
        if (one === INVALID) bad = true;
        else if (!opts.dedupe || !out.includes(one)) out.push(one);
      });
      return bad ? INVALID : out;
    },
  };
}

/** POP3 verbs, written in any case, stored upper-case. */
export const verb = spec<string>(`a POP3 verb: ${KNOWN_VERBS.join(', ')}`, (v) => {
  if (typeof v !== 'string') return INVALID;
  const upper = v.toUpperCase();
  return (KNOWN_VERBS as readonly string[]).includes(upper) ? upper : INVALID;
}, { type: 'string', pattern: `^(?:${KNOWN_VERBS.map(anyCase).join('|')})$` });

export const verbList = listOf(verb, { min: 1, dedupe: true });

// Only the alphabet: the address arithmetic is the validator's.
const CIDR_SHAPE = '^[0-9A-Fa-f.:]+(?:/\\d{1,3})?$';

export const cidr = spec<string>('a CIDR like "10.0.0.0/8" or "2001:db8::/32", or an IP address', (v) =>
  typeof v === 'string' && isValidCidr(v) ? v : INVALID, { type: 'string', pattern: CIDR_SHAPE });

export const negatableCidr = spec<string>(
  'a CIDR like "10.0.0.0/8" or "!10.0.0.0/8" (not in), or an IP address',
  (v) => (typeof v === 'string' && isValidCidr(v.startsWith('!') ? v.slice(1) : v) ? v : INVALID),
  { type: 'string', pattern: CIDR_SHAPE.replace('^', '^!?') },
);

const REGEX_FORM = /^\/(.*)\/([a-z]*)$/s;

/** A user pattern: an exact name, a `*` glob, or `/regex/flags` (which must compile). */
const anyUserPattern = spec<string>(
  'a user name, a pattern like "*@example.org", or a regular expression like "/^a.*@x\\.org$/i"',
  (v) => {
    if (typeof v !== 'string' || v === '' || /\s/.test(v) || CONTROL.test(v)) return INVALID;
    if (!v.startsWith('/')) return v;
    const m = REGEX_FORM.exec(v);
    if (!m) return INVALID;
    try {
      new RegExp(m[1] as string, m[2]);
      return v;
    } catch {
      // The problem itself is the report: the value is shown as found, the form as expected.
      return INVALID;
    }
  },
  { type: 'string', pattern: '^\\S+$' },
);

const NESTED_QUANTIFIER = 'a regular expression without a repeated group that repeats inside, like (a+)+ or (.*)* '
  + '(exponential time on a hostile login name): use a glob like "*@example.org" or a flatter regex';

/** ...and a regex must not repeat a repeating group: it runs on names from unauthenticated clients. */
export const userPattern: Spec<string> = {
  expected: anyUserPattern.expected,
  schema: anyUserPattern.schema,
  check(v, path, p) {
    const out = anyUserPattern.check(v, path, p);
    if (out === INVALID || !out.startsWith('/') || !hasNestedQuantifier(REGEX_FORM.exec(out)![1]!)) return out;
    p.found(path, v, NESTED_QUANTIFIER);
    return INVALID;
  },
};

/** A file path, made absolute against the config file's folder. */
export function filePath(baseDir: string): Spec<string> {
  return spec('a file path (relative to the config file\'s folder)', (v) =>
    typeof v === 'string' && v.trim() !== '' && !CONTROL.test(v) ? resolve(baseDir, v) : INVALID, TEXT_SCHEMA);
}

const HOST = /^[A-Za-z0-9._:%-]+$/;

/** A host to listen on or connect to: a name or an IP address, no spaces. */
export const host = spec<string>('a host name or IP address', (v) =>
  typeof v === 'string' && HOST.test(v) ? v : INVALID, { type: 'string', pattern: HOST.source });
