/**
 * Reading one YAML mapping: unknown keys are reported (with a "did you mean" hint) when the
 * section is opened, then each known key is read through a spec with its default.
 */
import { suggestKey, type Path, type Problems } from './problems.ts';
import { INVALID, type Spec } from './specs.ts';

export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class Section {
  private constructor(
    readonly problems: Problems,
    readonly path: Path,
    private readonly raw: Record<string, unknown>,
    /** Set when the value was not a mapping: reads give defaults and "missing" is not reported again. */
    private readonly broken: boolean,
  ) {}

  /**
   * Opens `value` as a mapping with exactly `keys`. An absent section (undefined, or an empty
   * `key:` that YAML reads as null) is an empty mapping, so every key takes its default.
   */
  static open(problems: Problems, value: unknown, path: Path, keys: readonly string[]): Section {
    if (value === undefined || value === null) return new Section(problems, path, {}, false);
    if (!isMapping(value)) {
      problems.found(path, value, `a mapping with keys: ${keys.join(', ')}`);
      return new Section(problems, path, {}, true);
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
    return new Section(problems, path, value, false);
  }

  /** Opens a list item: unlike a section, an empty item (null) is a mistake, not a default. */
  static item(problems: Problems, value: unknown, path: Path, keys: readonly string[]): Section | null {
    if (!isMapping(value)) {
      problems.found(path, value, `a mapping with keys: ${keys.join(', ')}`);
      return null;
    }
    return Section.open(problems, value, path, keys);
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
    const v = this.raw[key];
    if (v === undefined) return fallback;
    const out = spec.check(v, this.at(key), this.problems);
    return out === INVALID ? fallback : out;
  }

  /** The key's value, or undefined after reporting it missing or invalid. */
  req<T>(key: string, spec: Spec<T>): T | undefined {
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
    return Section.open(this.problems, this.raw[key], this.at(key), keys);
  }

  /** The items of a list-valued key, reporting a non-list; an absent or null key gives []. */
  items(key: string, expected: string): unknown[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [];
    if (Array.isArray(v)) return v;
    this.problems.found(this.at(key), v, expected);
    return [];
  }
}
