/**
 * What a bench or soak run has running (Dovecot, a gateway child) and its temp
 * folder, cleaned up once: at the end, on an error, or on SIGINT/SIGTERM.
 */
import fs from 'node:fs';
import { makeTempDir } from '../../test/harness/child-processes.ts';
import type { DovecotInstance } from '../../test/harness/dovecot.ts';
import type { GatewayProcess } from './gateway-process.ts';

export interface RunScope {
  readonly dir: string;
  readonly live: { dovecot: DovecotInstance | null; gateway: GatewayProcess | null };
  cleanup(): Promise<void>;
}

export function openRunScope(kind: string, log: (line: string) => void): RunScope {
  const dir = makeTempDir(kind);
  const live: RunScope['live'] = { dovecot: null, gateway: null };
  const cleanup = async (): Promise<void> => {
    await live.gateway?.stop();
    live.gateway = null;
    await live.dovecot?.stop();
    live.dovecot = null;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return { dir, live, cleanup };
}
