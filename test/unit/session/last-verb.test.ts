/**
 * LAST (RFC 1460, dropped by RFC 1939 but answered by popa3d and solid-pop3d): a known verb,
 * valid only in TRANSACTION and without arguments, off by default but accepted in allow lists.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../../src/config/schema.ts';
import { GatewayMetrics } from '../../../src/metrics/metrics.ts';
import { isMultiline } from '../../../src/protocol/expectation.ts';
import { gate, isKnownVerb } from '../../../src/session/state.ts';
import { parseExposition } from '../../harness/prometheus.ts';
import { configOf } from '../config/helpers.ts';

describe('the LAST verb', () => {
  it('is a known verb that the gate lets through only in TRANSACTION', () => {
    expect(isKnownVerb('LAST')).toBe(true);
    expect(gate('transaction', 'LAST', [], false)).toEqual({ ok: true });
    expect(gate('authorization', 'LAST', [], false)).toEqual({ ok: false, reply: 'badState' });
    expect(gate('update', 'LAST', [], false)).toEqual({ ok: false, reply: 'badState' });
  });

  it('takes no argument', () => {
    expect(gate('transaction', 'LAST', ['1'], false)).toEqual({ ok: false, reply: 'badSyntax' });
  });

  it('has a single-line reply', () => {
    expect(isMultiline('LAST', 0)).toBe(false);
  });

  it('is not in the default allowlist, but an allowlist or a rule may name it', () => {
    expect(DEFAULTS.policy.allow).not.toContain('LAST');
    const cfg = configOf((raw) => (raw.policy = {
      commands: { allow: [...DEFAULTS.policy.allow, 'last'] },
      rules: [{ match: { user: 'bob' }, deny: ['LAST'] }],
    }));
    expect(cfg.policy.commands.allow).toContain('LAST');
    expect(cfg.policy.rules[0]!.deny).toEqual(['LAST']);
  });

  it('gets its own verb label in the command metrics', async () => {
    const m = new GatewayMetrics();
    m.command('LAST', 'ok', 0.001);
    const e = parseExposition(await m.text());
    const sample = e.samples.find((s) => s.name === 'pop3gw_command_duration_seconds_count' && s.labels.verb === 'LAST');
    expect(sample?.value).toBe(1);
  });
});
