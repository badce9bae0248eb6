import { validateConfig } from '../../../src/config/validate.ts';
import type { GatewayConfig, Problem } from '../../../src/config/schema.ts';

export const BASE_DIR = '/etc/pop3gw';

/** The smallest valid config: one listener and a backend. Each test changes one thing. */
export function minimal(): Record<string, any> {
  return {
    listeners: [{ name: 'pop3s', host: '0.0.0.0', port: 995, tls: 'implicit' }],
    backend: { host: '127.0.0.1', port: 1110 },
  };
}

/** `minimal()` with `edit` applied, validated. */
export function validate(edit: (raw: Record<string, any>) => void = () => undefined, env: Record<string, string> = {}) {
  const raw = minimal();
  edit(raw);
  return validateConfig(raw, { baseDir: BASE_DIR, file: `${BASE_DIR}/gateway.yaml`, env });
}

export function configOf(edit?: (raw: Record<string, any>) => void, env?: Record<string, string>): GatewayConfig {
  const result = validate(edit, env);
  if (!result.ok) throw new Error(`expected a valid config, got:\n${JSON.stringify(result.problems, null, 2)}`);
  return result.config;
}

export function problemsOf(edit: (raw: Record<string, any>) => void, env?: Record<string, string>): Problem[] {
  const result = validate(edit, env);
  if (result.ok) throw new Error('expected problems, the config was accepted');
  return result.problems;
}

/** The one problem `edit` causes (fails when there are more or none). */
export function onlyProblem(edit: (raw: Record<string, any>) => void, env?: Record<string, string>): Problem {
  const problems = problemsOf(edit, env);
  if (problems.length !== 1) throw new Error(`expected exactly one problem, got:\n${JSON.stringify(problems, null, 2)}`);
  return problems[0] as Problem;
}
