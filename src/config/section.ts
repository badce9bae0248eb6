/**
 * Reading one YAML mapping: unknown keys are reported (with a "did you mean" hint) when the
 * section is opened, then each known key is read through a spec with its default.
 * A section also notes which spec read each key, so its JSON Schema is whatever the reader did:
 * reading every key unconditionally is the rule that keeps the shipped schema complete.
 */
import { Problems, suggestKey, type Path } from './problems.ts';
import { INVALID, type Checked, type Spec } from './specs.ts';
import { described, orNull, type JsonSchema } from './json-schema.ts';

export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What a section learnt about one key while reading it. */
interface Field {
  readonly schema: () => JsonSchema;
  readonly required: boolean;
}

export class Section {
  private readonly fields = new Map<string, Field>();
  private alternatives: readonly (readonly string[])[] = [];

  private constructor(
    readonly problems: Problems,
    readonly path: Path,
    private readonly raw: Record<string, unknown>,
    /** Set when the value was not a mapping: reads give defaults and "missing" is not reported again. */
    private readonly broken: boolean,
    private readonly keys: readonly string[],
    /** A section may be absent or null (read as empty); a list item or a mapping spec may not. */
    private readonly mayBeNull: boolean,
  ) {}

  /**
   * Opens `value` as a mapping with exactly `keys`. An absent section (undefined, or an empty
   * `key:` that YAML reads as null) is an empty mapping, so every key takes its default.
   */
  static open(problems: Problems, value: unknown, path: Path, keys: readonly string[]): Section {
    return Section.read(problems, value, path, keys, true);
  }

  private static read(problems: Problems, value: unknown, path: Path, keys: readonly string[], mayBeNull: boolean): Section {
    if (value === undefined || value === null) return new Section(problems, path, {}, false, keys, mayBeNull);
    if (!isMapping(value)) {
      problems.found(path, value, `a mapping with keys: ${keys.join(', ')}`);
      return new Section(problems, path, {}, true, keys, mayBeNull);
    }
    for (const key of Object.keys(value)) {
      if (keys.includes(key)) continue;
      const hint = suggestKey(key, keys);
      problems.add(
        [...path, key],
        hint === null ? `unknown key "${key}"` : `unknown key "${key}" (did you mean "${hint}"?)`,
        `one of: ${keys.join(', ')}`,
      );
    }
    return new Section(problems, path, value, false, keys, mayBeNull);
  }

  /** Opens a list item: unlike a section, an empty item (null) is a mistake, not a default. */
  static item(problems: Problems, value: unknown, path: Path, keys: readonly string[]): Section | null {
    if (!isMapping(value)) {
      problems.found(path, value, `a mapping with keys: ${keys.join(', ')}`);
      return null;
    }
    return Section.read(problems, value, path, keys, false);
  }

  /** An empty mapping read only to learn its shape (problems go nowhere). */
  static probe(keys: readonly string[]): Section {
    return Section.read(new Problems(undefined), {}, [], keys, false);
  }

  at(key: string): Path {
    return [...this.path, key];
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined;
  }

  value(key: string): unknown {
    return this.raw[key];
  }

  /** The key's value, or `fallback` when it is absent or invalid (an invalid one is reported). */
  opt<T>(key: string, spec: Spec<T>, fallback: T): T {
    this.note(key, () => spec.schema, false);
    const v = this.raw[key];
    if (v === undefined) return fallback;
    const out = spec.check(v, this.at(key), this.problems);
    return out === INVALID ? fallback : out;
  }

  /** The key's value, or undefined after reporting it missing or invalid. */
  req<T>(key: string, spec: Spec<T>): T | undefined {
    this.note(key, () => spec.schema, true);
    const v = this.raw[key];
    if (v === undefined) {
      if (!this.broken) this.problems.add(this.at(key), 'missing', spec.expected);
      return undefined;
    }
    const out = spec.check(v, this.at(key), this.problems);
    return out === INVALID ? undefined : out;
  }

  /** A nested mapping section (absent means empty). */
  sub(key: string, keys: readonly string[]): Section {
    const child = Section.open(this.problems, this.raw[key], this.at(key), keys);
    this.note(key, () => child.schema(), false);
    return child;
  }

  /**
   * A list-valued key read item by item, aligned with the YAML list (null where an item is
   * invalid, its problems reported). Absent or null gives [] unless the key is `required` or
   * needs `min` items.
   */
  list<T>(key: string, item: Spec<T>, expected: string, opts: { required?: boolean; min?: number } = {}): (T | null)[] {
    const min = opts.min ?? 0;
    const required = opts.required ?? false;
    this.note(key, () => {
      const list = { type: 'array', items: item.schema, ...(min > 0 ? { minItems: min } : {}) };
      return described(required || min > 0 ? list : orNull(list), expected);
    }, required);
    const v = this.raw[key];
    if (v === undefined) {
      if (required && !this.broken) this.problems.add(this.at(key), 'missing', expected);
      return [];
    }
    if (v === null && !required && min === 0) return [];
    if (!Array.isArray(v) || v.length < min) {
      this.problems.found(this.at(key), v, expected);
      return [];
    }
    return v.map((raw, i) => {
      const out = item.check(raw, [...this.at(key), i], this.problems);
      return out === INVALID ? null : out;
    });
  }

  /**
   * Tells the schema that exactly one of these key groups names the thing (backend: host and
   * port, or servers). The reader still reports the conflict itself, with its own words.
   */
  oneOfGroups(groups: readonly (readonly string[])[]): void {
    this.alternatives = groups;
  }

  /** The JSON Schema of this mapping as read so far: every listed key, with the spec that read it. */
  schema(): JsonSchema {
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const key of this.keys) {
      const field = this.fields.get(key);
      // A key that was never read through a spec says nothing; the drift test reports it.
      properties[key] = field === undefined ? {} : field.schema();
      if (field?.required === true) required.push(key);
    }
    return {
      type: this.mayBeNull ? ['object', 'null'] : 'object',
      properties,
      ...(required.length > 0 ? { required } : {}),
      ...(this.alternatives.length > 0 ? { oneOf: this.alternatives.map((g) => ({ required: [...g] })) } : {}),
      additionalProperties: false,
    };
  }

  private note(key: string, schema: () => JsonSchema, required: boolean): void {
    if (!this.fields.has(key)) this.fields.set(key, { schema, required });
  }
}

/**
 * A spec for a mapping with exactly `keys`, read by `read`. Its schema is learnt by running
 * `read` on an empty mapping, so a key added to the reader is in the schema with no extra work.
 */
export function mapping<T>(expected: string, keys: readonly string[], read: (s: Section) => Checked<T>): Spec<T> {
  return {
    expected,
    get schema(): JsonSchema {
      const probe = Section.probe(keys);
      read(probe);
      return described(probe.schema(), expected);
    },
    check(v, path, p) {
      const s = Section.item(p, v, path, keys);
      return s === null ? INVALID : read(s);
    },
  };
}
