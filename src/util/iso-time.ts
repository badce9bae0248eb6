/**
 * `new Date(ms).toISOString()` for the log and audit timestamps, at a fraction of the cost: the
 * text up to the second is kept and reused while the second lasts, so a line costs a string
 * join, not a Date and V8's formatting (which goes through snprintf). Same text for every
 * instant, years outside 0–9999 included (those take the slow path: `+YYYYYY` forms).
 */
let second = NaN;
let head = '';

export function isoTime(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s !== second) {
    const full = new Date(ms).toISOString();
    // "YYYY-MM-DDTHH:MM:SS.mmmZ": 24 characters for four-digit years only.
    if (full.length !== 24) return full;
    second = s;
    head = full.slice(0, 20);
    return full;
  }
  const m = ms - s * 1000;
  return head + (m >= 100 ? '' : m >= 10 ? '0' : '00') + m + 'Z';
}
