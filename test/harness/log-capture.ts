import { Writable } from 'node:stream';

/**
 * An in-memory log destination: pass `stream` to pino (or anything that writes
 * JSON lines) and assert on parsed objects. Lines that are not JSON are kept as
 * `{ raw: line }` so nothing is lost.
 */

export interface LogCapture {
  stream: Writable;
  lines(): Array<Record<string, unknown>>;
  text(): string;
  /** Parsed lines matching every key/value in `fields`. */
  find(fields: Record<string, unknown>): Array<Record<string, unknown>>;
  /** Resolves with the first line (already written or still to come) matching the predicate. */
  waitFor(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  clear(): void;
}

export function captureLogs(): LogCapture {
  let raw = '';
  let partial = '';
  const parsed: Array<Record<string, unknown>> = [];
  const listeners = new Set<() => void>();

  const accept = (chunk: string) => {
    raw += chunk;
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (line.trim() === '') continue;
      try {
        const value: unknown = JSON.parse(line);
        parsed.push(typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : { raw: line });
      } catch {
        parsed.push({ raw: line }); // not JSON: kept verbatim
      }
    }
    for (const listener of [...listeners]) listener();
  };

  const stream = new Writable({
    decodeStrings: false,
    write(chunk: Buffer | string, _encoding, callback) {
      accept(typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
      callback();
    },
  });

  const matches = (line: Record<string, unknown>, fields: Record<string, unknown>) =>
    Object.entries(fields).every(([k, v]) => line[k] === v);

  return {
    stream,
    lines: () => [...parsed],
    text: () => raw,
    find: (fields) => parsed.filter((l) => matches(l, fields)),
    waitFor(predicate, timeoutMs = 5000) {
      const found = parsed.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const listener = () => {
          const hit = parsed.find(predicate);
          if (hit) {
            clearTimeout(timer);
            listeners.delete(listener);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(listener);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for a matching log line; got ${parsed.length} lines`));
        }, timeoutMs);
        listeners.add(listener);
      });
    },
    clear() {
      raw = '';
      partial = '';
      parsed.length = 0;
    },
  };
}
