/**
 * `node --import tsx bench/micro/auth-charge.ts [--rounds N] [--logins N] [--source]`: CPU per
 * successful login's counter work (AuthLimiter.charge then succeeded, memory store) in a tight
 * loop: what the policy costs a session before the backend is asked, without sockets or load.
 * Eight users from one address, as the bench's clients; medians of per-round figures.
 *
 * It runs the compiled build (dist/, rebuilt first when src/ is newer), as the gateway is
 * deployed and as the bench runs it. `--source` runs src/ through tsx instead, which reads
 * high for code that makes closures: tsx compiles with esbuild's keepNames, so every function
 * made at run time also gets a `__name` call (an Object.defineProperty). Measured on the
 * thirteenth pass: 3.7-4.1 µs per login through tsx against 2.6-3.0 compiled, same code.
 * Logins awaited only where the answer is a promise, as the session does.
 */
import { parseArgs } from 'node:util';
import { ensureBuilt } from '../lib/gateway-process.ts';
import type * as Limits from '../../src/policy/auth-limits.ts';
import type * as Store from '../../src/policy/counter-store.ts';
import type * as Networks from '../../src/policy/networks.ts';
import type * as Logger from '../../src/util/logger.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string' }, logins: { type: 'string' }, source: { type: 'boolean' } } });
const fromSource = values.source === true;
if (!fromSource) ensureBuilt();
const load = async <T>(file: string): Promise<T> => (await import(fromSource ? `../../src/${file}.ts` : `../../dist/src/${file}.js`)) as T;
const { AuthLimiter } = await load<typeof Limits>('policy/auth-limits');
const { createCounterStore } = await load<typeof Store>('policy/counter-store');
const { NetworkSet } = await load<typeof Networks>('policy/networks');
const { silentLogger } = await load<typeof Logger>('util/logger');
const rounds = Number(values.rounds ?? 7);
const logins = Number(values.logins ?? 20_000);
const cfg = { maxFailuresPerIp: 20, maxFailuresPerUser: 5, window: 900_000, lockout: 900_000, failureDelay: 1000, maxAttemptsPerSession: 3, ipv6Prefix: 64 };
const limiter = new AuthLimiter(cfg, new NetworkSet([]), createCounterStore('memory', silentLogger));

async function login(i: number): Promise<void> {
  const charging = limiter.charge('127.0.0.1', `user${i % 8}`, 'pw');
  const r = charging instanceof Promise ? await charging : charging;
  if (!r.allowed) throw new Error('a login was refused: the counters are not what this bench expects');
  const settling = limiter.succeeded(r.ticket);
  if (settling instanceof Promise) await settling;
}

for (let i = 0; i < logins; i++) await login(i); // warm-up
const perLogin: number[] = [];
for (let r = 0; r < rounds; r++) {
  const t0 = process.cpuUsage();
  for (let i = 0; i < logins; i++) await login(i);
  const t = process.cpuUsage(t0);
  perLogin.push((t.user + t.system) / logins);
}
perLogin.sort((a, b) => a - b);
console.log(`charge + succeeded, memory store (${fromSource ? 'src/ through tsx' : 'compiled dist/'}): median ${perLogin[rounds >> 1]!.toFixed(2)} µs CPU per login (min ${perLogin[0]!.toFixed(2)}, max ${perLogin.at(-1)!.toFixed(2)}; ${rounds} rounds of ${logins})`);
