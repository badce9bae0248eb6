/**
 * Sizes in config: "512B", "64KiB", "10MiB", "1GiB" (1024-based), "500KB", "10MB" (1000-based),
 * or a plain non-negative integer meaning bytes.
 */

const UNIT_BYTES: Readonly<Record<string, number>> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
  KB: 1000,
  kB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
  TB: 1000 ** 4,
};

const SIZE = /^(\d+) ?([A-Za-z]+)?$/;
/** The accepted string form, units spelled out, for the config's JSON Schema. */
export const SIZE_PATTERN = `^\\d+ ?(?:${Object.keys(UNIT_BYTES).join('|')})?$`;

/** Bytes, or null when `v` is not a size. */
export function parseSize(v: unknown): number | null {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : null;
  if (typeof v !== 'string') return null;
  const m = SIZE.exec(v);
  if (!m) return null;
  const unit = m[2] === undefined ? 1 : UNIT_BYTES[m[2]];
  if (unit === undefined) return null;
  const bytes = Number(m[1]) * unit;
  return Number.isSafeInteger(bytes) ? bytes : null;
}

const BINARY = ['TiB', 'GiB', 'MiB', 'KiB'] as const;
const DECIMAL = ['TB', 'GB', 'MB', 'KB'] as const;

/** A string `parseSize` reads back as `bytes`, in the largest unit that divides it exactly. */
export function formatSize(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`not a size in bytes: ${bytes}`);
  if (bytes === 0) return '0B';
  // Binary units first: limits in this project are powers of two far more often than not.
  for (const unit of [...BINARY, ...DECIMAL]) {
    const n = UNIT_BYTES[unit] as number;
    if (bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return `${bytes}B`;
}
