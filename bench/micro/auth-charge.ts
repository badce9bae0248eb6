/**
 * `node --import tsx bench/micro/auth-charge.ts [--rounds N] [--logins N]`: CPU per successful
 * login's counter work (AuthLimiter.charge then succeeded, memory store) in a tight loop: what
 * the policy costs a session before the backend is asked, without sockets or load. Eight users
 * from one address, as the bench's clients; medians of per-round figures.
 */
import { parseArgs } from 'node:util';
import { AuthLimiter } from '../../src/policy/auth-limits.ts';
import { createCounterStore } from '../../src/policy/counter-store.ts';
import { NetworkSet } from '../../src/policy/networks.ts';
import { silentLogger } from '../../src/util/logger.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string' }, logins: { type: 'string' } } });
const rounds = Number(values.rounds ?? 7);
const logins = Number(values.logins ?? 20_000);
const cfg = { maxFailuresPerIp: 20, maxFailuresPerUser: 5, window: 900_000, lockout: 900_000, failureDelay: 1000, maxAttemptsPerSession: 3, ipv6Prefix: 64 };
const limiter = new AuthLimiter(cfg, new NetworkSet([]), createCounterStore('memory', silentLogger));

async function login(i: number): Promise<void> {
  const r = await limiter.charge('127.0.0.1', `user${i % 8}`, 'pw');
  if (!r.allowed) throw new Error('a login was refused: the counters are not what this bench expects');
  await limiter.succeeded(r.ticket);
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
console.log(`charge + succeeded, memory store: median ${perLogin[rounds >> 1]!.toFixed(2)} µs CPU per login (min ${perLogin[0]!.toFixed(2)}, max ${perLogin.at(-1)!.toFixed(2)}; ${rounds} rounds of ${logins})`);
