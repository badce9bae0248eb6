import { createRequire } from 'node:module';
import * as prom from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { collectProcessMetrics, EVENT_LOOP_SAMPLE_MS, GatewayMetrics } from '../../../src/metrics/metrics.ts';
import { parseExposition, type Exposition } from '../../harness/prometheus.ts';

function value(e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  return e.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

async function scrape(m: GatewayMetrics): Promise<Exposition> {
  return parseExposition(await m.text());
}

describe('gateway metrics', () => {
  it('the exposition parses strictly and every gateway metric has HELP and TYPE', async () => {
    const e = await scrape(new GatewayMetrics());
    const ours = [...e.type.keys()].filter((n) => n.startsWith('pop3gw_'));
    expect(ours.sort()).toEqual([
      'pop3gw_audit_errors_total', 'pop3gw_backend_connect_seconds', 'pop3gw_backend_errors_total', 'pop3gw_backend_up', 'pop3gw_bytes_total', 'pop3gw_command_duration_seconds',
      'pop3gw_connections_total', 'pop3gw_lockouts_active', 'pop3gw_logins_total', 'pop3gw_policy_refusals_total',
      'pop3gw_sessions_active', 'pop3gw_signals_total', 'pop3gw_tls_handshake_failures_total',
    ]);
    for (const n of ours) expect(e.help.get(n)?.length).toBeGreaterThan(10);
    expect(e.type.has('process_cpu_user_seconds_total') || e.type.has('process_cpu_seconds_total')).toBe(true);
  });

  it('backend_up follows the health probe at each scrape and audit errors count up from 0', async () => {
    const m = new GatewayMetrics();
    let up = false;
    m.setBackendHealth(() => up);
    let e = await scrape(m);
    expect(value(e, 'pop3gw_backend_up')).toBe(0);
    expect(value(e, 'pop3gw_audit_errors_total')).toBe(0);
    up = true;
    m.auditError();
    m.auditError();
    e = await scrape(m);
    expect(value(e, 'pop3gw_backend_up')).toBe(1);
    expect(value(e, 'pop3gw_audit_errors_total')).toBe(2);
  });

  it('has no gauge named *_total (promtool check metrics rejects them)', async () => {
    const e = await scrape(new GatewayMetrics());
    const bad = [...e.type].filter(([n, t]) => n.endsWith('_total') && t !== 'counter').map(([n]) => n);
    expect(bad).toEqual([]);
  });

  it('the strict parser rejects malformed text', () => {
    expect(() => parseExposition('# TYPE a counter\na{x="1} 1\n')).toThrow(/bad/);
    expect(() => parseExposition('b 1\n')).toThrow(/without TYPE/);
    expect(() => parseExposition('# TYPE a counter\na one\n')).toThrow(/bad value/);
  });

  it('counters move with connections, logins, bytes and TLS failures', async () => {
    const m = new GatewayMetrics();
    m.connection('pop3s', 'accepted');
    m.connection('pop3s', 'accepted');
    m.connection('pop3', 'refused');
    m.login('ok');
    m.login('locked');
    m.bytes('backend_to_client', 1000);
    m.bytes('client_to_backend', 12);
    m.bytes('client_to_backend', 0);
    m.tlsHandshakeFailure('pop3s');
    const e = await scrape(m);
    expect(value(e, 'pop3gw_connections_total', { listener: 'pop3s', result: 'accepted' })).toBe(2);
    expect(value(e, 'pop3gw_connections_total', { listener: 'pop3', result: 'refused' })).toBe(1);
    expect(value(e, 'pop3gw_logins_total', { result: 'ok' })).toBe(1);
    expect(value(e, 'pop3gw_logins_total', { result: 'failed' })).toBe(0);
    expect(value(e, 'pop3gw_logins_total', { result: 'locked' })).toBe(1);
    expect(value(e, 'pop3gw_bytes_total', { direction: 'backend_to_client' })).toBe(1000);
    expect(value(e, 'pop3gw_bytes_total', { direction: 'client_to_backend' })).toBe(12);
    expect(value(e, 'pop3gw_tls_handshake_failures_total', { listener: 'pop3s' })).toBe(1);
  });

  it('bytes summed between scrapes are counted once, by every way the counter is read', async () => {
    const m = new GatewayMetrics();
    for (let i = 0; i < 100; i++) m.bytes('backend_to_client', 65_536);
    m.bytes('client_to_backend', 6);
    m.bytes('client_to_backend', Number.NaN);
    m.bytes('client_to_backend', -5);
    const first = await scrape(m);
    expect(value(first, 'pop3gw_bytes_total', { direction: 'backend_to_client' })).toBe(6_553_600);
    expect(value(first, 'pop3gw_bytes_total', { direction: 'client_to_backend' })).toBe(6);
    // A second read without traffic in between adds nothing; new traffic is added to the total.
    expect(value(await scrape(m), 'pop3gw_bytes_total', { direction: 'backend_to_client' })).toBe(6_553_600);
    m.bytes('backend_to_client', 10);
    // The cluster's primary reads workers through getMetricsAsJSON(): the same total.
    const json = await m.registry.getMetricsAsJSON();
    const bytes = json.find((x) => x.name === 'pop3gw_bytes_total')!.values;
    expect(bytes.find((v) => v.labels.direction === 'backend_to_client')?.value).toBe(6_553_610);
    expect(value(await scrape(m), 'pop3gw_bytes_total', { direction: 'backend_to_client' })).toBe(6_553_610);
  });

  it('the active sessions gauge goes up and down per listener', async () => {
    const m = new GatewayMetrics();
    m.sessionOpened('pop3s');
    m.sessionOpened('pop3s');
    m.sessionOpened('pop3');
    m.sessionClosed('pop3s');
    const e = await scrape(m);
    expect(value(e, 'pop3gw_sessions_active', { listener: 'pop3s' })).toBe(1);
    expect(value(e, 'pop3gw_sessions_active', { listener: 'pop3' })).toBe(1);
  });

  it('commands are a histogram by verb and result; unknown verbs share one OTHER label', async () => {
    const m = new GatewayMetrics();
    m.command('retr', 'ok', 0.02);
    m.command('RETR', 'ok', 2);
    m.command('XYZZY', 'err', 0);
    m.command('hunter2', 'err', 0);
    const e = await scrape(m);
    expect(value(e, 'pop3gw_command_duration_seconds_count', { verb: 'RETR', result: 'ok' })).toBe(2);
    expect(value(e, 'pop3gw_command_duration_seconds_sum', { verb: 'RETR', result: 'ok' })).toBeCloseTo(2.02);
    expect(value(e, 'pop3gw_command_duration_seconds_bucket', { verb: 'RETR', result: 'ok', le: '0.05' })).toBe(1);
    expect(value(e, 'pop3gw_command_duration_seconds_count', { verb: 'OTHER', result: 'err' })).toBe(2);
    expect(e.samples.some((s) => Object.values(s.labels).includes('hunter2'))).toBe(false);
  });

  it('policy refusals, backend errors and signals use fixed label sets', async () => {
    const m = new GatewayMetrics();
    m.policyRefusal('rule-deny');
    m.policyRefusal('something new');
    m.backendConnect(0.01, 'ok');
    m.backendConnect(5, 'error', 'TIMEOUT');
    m.backendConnect(0.1, 'error', 'ECONNRESET');
    m.signal('mass-dele');
    m.signal('made-up');
    const e = await scrape(m);
    expect(value(e, 'pop3gw_policy_refusals_total', { reason: 'rule-deny' })).toBe(1);
    expect(value(e, 'pop3gw_policy_refusals_total', { reason: 'other' })).toBe(1);
    expect(value(e, 'pop3gw_backend_connect_seconds_count', { result: 'ok' })).toBe(1);
    expect(value(e, 'pop3gw_backend_connect_seconds_count', { result: 'error' })).toBe(2);
    expect(value(e, 'pop3gw_backend_errors_total', { code: 'TIMEOUT' })).toBe(1);
    expect(value(e, 'pop3gw_backend_errors_total', { code: 'OTHER' })).toBe(1);
    expect(value(e, 'pop3gw_signals_total', { signal: 'mass-dele' })).toBe(1);
    expect(value(e, 'pop3gw_signals_total', { signal: 'other' })).toBe(1);
  });

  it('no gateway metric has a user or address label', async () => {
    const m = new GatewayMetrics();
    m.connection('pop3s', 'accepted');
    m.command('USER', 'ok', 0);
    const e = await scrape(m);
    const labelNames = new Set(e.samples.filter((s) => s.name.startsWith('pop3gw_')).flatMap((s) => Object.keys(s.labels)));
    const bounded = new Set(['direction', 'le', 'listener', 'result', 'verb', 'reason', 'code', 'signal']);
    expect([...labelNames].filter((l) => !bounded.has(l))).toEqual([]);
    expect(labelNames.has('listener')).toBe(true);
  });

  it('the lockouts gauge asks its callback at every scrape, NaN when it fails', async () => {
    const m = new GatewayMetrics();
    expect(value(await scrape(m), 'pop3gw_lockouts_active')).toBe(0);
    let n = 3;
    m.setLockoutsGauge(() => n);
    expect(value(await scrape(m), 'pop3gw_lockouts_active')).toBe(3);
    n = 1;
    expect(value(await scrape(m), 'pop3gw_lockouts_active')).toBe(1);
    m.setLockoutsGauge(() => {
      throw new Error('store down');
    });
    expect(value(await scrape(m), 'pop3gw_lockouts_active')).toBeNaN();
  });

  it('two instances in one process keep separate registries', async () => {
    const a = new GatewayMetrics();
    const b = new GatewayMetrics();
    a.login('ok');
    expect(value(await scrape(a), 'pop3gw_logins_total', { result: 'ok' })).toBe(1);
    expect(value(await scrape(b), 'pop3gw_logins_total', { result: 'ok' })).toBe(0);
    expect(a.registry).not.toBe(b.registry);
  });

  it('reports the Prometheus text content type', () => {
    expect(new GatewayMetrics().contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });
});

describe('process metrics', () => {
  it('sample the event-loop delay every 100 ms, not prom-client\'s 10 ms (a wake-up each time)', async () => {
    // prom-client reads the monitor from the perf_hooks module object when it starts collecting.
    const perfHooks = createRequire(import.meta.url)('node:perf_hooks') as typeof import('node:perf_hooks');
    const spy = vi.spyOn(perfHooks, 'monitorEventLoopDelay');
    try {
      const registry = new prom.Registry();
      collectProcessMetrics(registry);
      expect(EVENT_LOOP_SAMPLE_MS).toBe(100);
      expect(spy).toHaveBeenCalledWith(expect.objectContaining({ resolution: 100 }));
      // The lag series are still there.
      const e = parseExposition(await registry.metrics());
      expect(e.samples.some((x) => x.name === 'nodejs_eventloop_lag_p99_seconds')).toBe(true);
    } finally {
      spy.mockRestore();
    }
  });
});
