/**
 * JSON Schema fragments (draft-07) for the config's value specs. The specs own their fragments
 * (specs.ts), sections assemble them (section.ts), and document-schema.ts writes the whole
 * document: one source of truth for the validator and for editors.
 */

export type JsonSchema = { [keyword: string]: unknown };

/** Adds the human text an editor shows on hover: the spec's own `expected`. */
export function described(schema: JsonSchema, expected: string): JsonSchema {
  return { ...schema, description: expected };
}

/**
 * `base` or null. A single `type` widens in place (keywords like `items` or `pattern` only
 * constrain their own type, so null passes them), which keeps editors' completion simple.
 */
export function orNull(base: JsonSchema): JsonSchema {
  const rest = { ...base };
  delete rest.description;
  if (typeof rest.type === 'string') return { ...rest, type: [rest.type, 'null'] };
  if (Array.isArray(rest.enum)) return { ...rest, enum: [...(rest.enum as unknown[]), null] };
  return { anyOf: [rest, { type: 'null' }] };
}

/** A regular expression source that matches `word` in any letter case (JSON Schema has no `i` flag). */
export function anyCase(word: string): string {
  return word.replace(/[a-z]/gi, (c) => `[${c.toUpperCase()}${c.toLowerCase()}]`);
}

/**
 * Whether a property's schema says anything about the value: a key that was listed but never
 * read through a spec comes out as `{}` (or a bare description), and the drift test reports it.
 */
export function constrains(schema: JsonSchema): boolean {
  return ['type', 'enum', 'const', 'anyOf', 'oneOf', 'allOf', 'pattern', '$ref'].some((k) => k in schema);
}
