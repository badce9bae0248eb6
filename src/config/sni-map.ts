/**
 * Chooses a value by TLS server name: an exact name first, then a `*.domain` key that covers
 * exactly one more label (RFC 6125 §6.4.3: the wildcard stands for one whole left-most label).
 * Pure, so the matching rules are tested without sockets.
 */
export class SniMap<T> {
  readonly #exact = new Map<string, T>();
  readonly #wildcard = new Map<string, T>();

  constructor(entries: Iterable<readonly [string, T]>) {
    for (const [name, value] of entries) {
      const key = normalize(name);
      if (key.startsWith('*.')) this.#wildcard.set(key.slice(2), value);
      else this.#exact.set(key, value);
    }
  }

  get size(): number {
    return this.#exact.size + this.#wildcard.size;
  }

  /** The value for `servername`, or undefined when no key matches (the caller uses its default). */
  lookup(servername: string | undefined | null): T | undefined {
    if (!servername) return undefined;
    const name = normalize(servername);
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    // "*.example.org" must not match "example.org" itself, nor a name with an empty first label.
    if (dot <= 0) return undefined;
    return this.#wildcard.get(name.slice(dot + 1));
  }
}

/** Names compare case-insensitively; a trailing root dot is not part of the name. */
function normalize(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}
