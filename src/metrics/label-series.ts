/**
 * The two things every metric of ours with a fixed list of label names does per observation:
 * a Map key for the series its label values name, and, when that series is new, the label object
 * prom-client reads it by. Shared by CountedHistogram and TallyCounter.
 */

/** One key per list of label values: NUL is in none of them (config listener names, verbs, results, reasons). */
export function seriesKey(values: readonly string[]): string {
  return values.length === 1 ? values[0]! : values.length === 2 ? `${values[0]}\u0000${values[1]}` : values.join('\u0000');
}

/** `{ name: value }` for each label name, in order; the values must match the names one for one. */
export function labelObject<L extends string>(names: readonly L[], values: readonly string[]): Record<L, string> {
  if (values.length !== names.length) throw new RangeError(`${names.length} label values expected, got ${values.length}`);
  const labels = {} as Record<L, string>;
  names.forEach((name, i) => (labels[name] = values[i]!));
  return labels;
}
