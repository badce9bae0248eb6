/**
 * A CommonJS package loaded the first time it is used rather than at start: node-forge (only to
 * generate a self-signed pair), ioredis (only with a redis:// counter store) and pino-pretty
 * (only for readable log lines). Imported eagerly they kept about 5 MiB of heap alive in every
 * gateway that never used them, which every full garbage collection had to mark again.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export function onDemand<T>(specifier: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(specifier) as T);
}
