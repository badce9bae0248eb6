/**
 * Durations in config: "250ms", "10s", "15m", "1h", "1d", or a sequence of them ("1h30m").
 * A unit is required so that "30" can never be read as seconds by one person and ms by another;
 * the only bare number accepted is 0, which means the same in every unit.
 */

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

const WHOLE = /^(?:\d+(?:ms|s|m|h|d))+$/;
/** The accepted string form, for the config's JSON Schema. */
export const DURATION_PATTERN = WHOLE.source;
const PART = /(\d+)(ms|s|m|h|d)/g;

/** Milliseconds, or null when `v` is not a duration. */
export function parseDuration(v: unknown): number | null {
  if (v === 0) return 0;
  if (typeof v !== 'string' || !WHOLE.test(v)) return null;
  let total = 0;
  for (const [, digits, unit] of v.matchAll(PART)) {
    total += Number(digits) * UNIT_MS[unit as Unit];
  }
  return Number.isSafeInteger(total) ? total : null;
}

const ORDER: readonly Unit[] = ['d', 'h', 'm', 's', 'ms'];

/** The shortest string `parseDuration` reads back as `ms` (e.g. 90000 → "1m30s"). */
export function formatDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`not a duration in ms: ${ms}`);
  if (ms === 0) return '0ms';
  let rest = ms;
  let out = '';
  for (const unit of ORDER) {
    const count = Math.floor(rest / UNIT_MS[unit]);
    if (count > 0) {
      out += `${count}${unit}`;
      rest -= count * UNIT_MS[unit];
    }
  }
  return out;
}
