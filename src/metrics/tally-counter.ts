/**
 * A prom-client Counter counted per session: an increment is a Map look-up by the joined label
 * values and one addition; the sums go into the Counter whenever it is read (prom-client calls
 * `collect` before every read: a scrape, the cluster's aggregation). prom-client's own `inc`
 * sorts, joins and checks the label object each time: its two increments per session (the
 * connection and the login) came to 14 µs of CPU per session, 0.6 % of a whole TLS session
 * (`bench/perf-sessions.ts --owners`). The exposition is prom-client's, unchanged.
 */
import * as prom from 'prom-client';
import { labelObject, seriesKey } from './label-series.ts';

interface Pending<L extends string> {
  readonly labels: Record<L, string>;
  n: number;
}

export interface TallyCounterConfig<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly registers: readonly prom.Registry[];
}

export class TallyCounter<L extends string> {
  readonly #labelNames: readonly L[];
  readonly #pending = new Map<string, Pending<L>>();
  readonly #counter: prom.Counter<L>;

  constructor(cfg: TallyCounterConfig<L>) {
    this.#labelNames = cfg.labelNames;
    this.#counter = new prom.Counter<L>({
      name: cfg.name, help: cfg.help, labelNames: cfg.labelNames, registers: [...cfg.registers],
      collect: () => this.#flush(),
    });
  }

  /** Adds `n` (default 1) to the series whose label values are `values`, in the order of `labelNames`. */
  inc(values: readonly string[], n = 1): void {
    this.#series(values).n += n;
  }

  /** A series that shows 0 before its first event (so rate() and alerts work from the start). */
  zero(values: readonly string[]): void {
    this.#counter.inc(this.#series(values).labels, 0);
  }

  #series(values: readonly string[]): Pending<L> {
    const key = seriesKey(values);
    let p = this.#pending.get(key);
    if (p === undefined) {
      p = { labels: labelObject(this.#labelNames, values), n: 0 };
      this.#pending.set(key, p);
    }
    return p;
  }

  #flush(): void {
    for (const p of this.#pending.values()) {
      if (p.n === 0) continue;
      this.#counter.inc(p.labels, p.n);
      p.n = 0;
    }
  }
}
