import { randomFillSync } from 'node:crypto';

const ID_BYTES = 12;
/** Random bytes for this many ids are drawn at once: one CSPRNG call per 256 sessions, not per session. */
const POOL_IDS = 256;
const pool = Buffer.alloc(ID_BYTES * POOL_IDS);
let next = POOL_IDS;

/** A 16-character session id: unique enough to grep for, short enough to read. */
export function newSessionId(): string {
  if (next === POOL_IDS) {
    randomFillSync(pool);
    next = 0;
  }
  const at = next++ * ID_BYTES;
  return pool.toString('base64url', at, at + ID_BYTES);
}
