/**
 * The node flags the gateway runs with, as the bin's shebang (`src/cli.ts`, line 1) gives them:
 * the one place they are written down for the code. `npm start`, the systemd unit and the
 * benchmark's gateway processes must carry the same ones (test/integration/ops-systemd.test.ts,
 * package-build.test.ts), so a flag measured in the bench is the flag production runs with.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli.ts');

export function gatewayNodeFlags(): string[] {
  const first = fs.readFileSync(CLI, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S node((?: --[a-z0-9-]+(?:=[^ ]+)?)*)$/.exec(first);
  if (m === null) throw new Error(`src/cli.ts: unexpected shebang ${JSON.stringify(first)}`);
  return m[1]!.trim().split(' ').filter((f) => f !== '');
}

/** A flag's name without `--no-` and `=value`: `--no-single-threaded-gc` and `--single-threaded-gc` are one flag. */
export function flagName(flag: string): string {
  return flag.replace(/=.*$/, '').replace(/^--no-/, '--');
}
