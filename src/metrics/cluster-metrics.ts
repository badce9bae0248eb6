/**
 * /metrics for a gateway with several worker processes: each worker keeps its own
 * GatewayMetrics registry and answers `getMetricsAsJSON()` over IPC; the primary merges
 * them with prom-client's AggregatorRegistry.aggregate (counters and histograms summed,
 * gauges summed unless the metric says otherwise), plus a few series of its own.
 * prom-client's `clusterMetrics()` only covers the global registry, which we never use.
 */
import * as prom from 'prom-client';
import { collectProcessMetrics } from './metrics.ts';

export class ClusterMetrics {
  readonly registry = new prom.Registry();
  private readonly restarts = new prom.Counter({
    name: 'pop3gw_worker_restarts_total',
    help: 'Worker processes that died and were replaced.',
    registers: [this.registry],
  });

  private readonly auditErrors = new prom.Counter({
    name: 'pop3gw_audit_errors_total',
    help: 'Audit records that did not reach the audit file (write failed, buffer full, record unwritable).',
    registers: [this.registry],
  });

  constructor(liveWorkers: () => number) {
    new prom.Gauge({
      name: 'pop3gw_workers',
      help: 'Worker processes serving connections.',
      registers: [this.registry],
      collect() {
        this.set(liveWorkers());
      },
    });
    // The primary's own CPU and memory, summed into the process_* series with the workers'.
    collectProcessMetrics(this.registry);
  }

  /** The primary writes the one audit file: its write errors are counted here. */
  auditError(): void {
    this.auditErrors.inc();
  }

  workerRestarted(): void {
    this.restarts.inc();
  }

  /** `workers`: each worker's getMetricsAsJSON() result (missing workers are simply absent). */
  async text(workers: readonly unknown[]): Promise<{ contentType: string; body: string }> {
    const own = await this.registry.getMetricsAsJSON();
    const merged = prom.AggregatorRegistry.aggregate([...workers.filter(Array.isArray), own]);
    return { contentType: merged.contentType, body: await merged.metrics() };
  }
}
