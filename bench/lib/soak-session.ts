/**
 * One soak worker: sessions of random POP3 work through the gateway, every
 * reply checked against the mailbox read from Dovecot directly. Intentional
 * disconnects (mid-RETR, without QUIT, after DELE) are counted, not errors.
 * The mailbox never changes: DELE is always followed by RSET or a drop.
 */
import type { Rng } from './mailbox.ts';
import { expectedTop, sha256, type ExpectedMailbox } from './soak-mailbox.ts';
import { RawPop3, unstuff, type Endpoint } from './raw-pop3.ts';

export interface SoakCounters {
  sessions: number;
  logins: number;
  badPasswords: number;
  commands: number;
  retrOctets: number;
  retrVerified: number;
  topVerified: number;
  pipelined: number;
  dropsMidRetr: number;
  dropsIdle: number;
  dropsAfterDele: number;
  quits: number;
  mismatches: number;
  unexpectedErrors: number;
  samples: string[];
}

export function newCounters(): SoakCounters {
  return {
    sessions: 0, logins: 0, badPasswords: 0, commands: 0, retrOctets: 0, retrVerified: 0, topVerified: 0, pipelined: 0,
    dropsMidRetr: 0, dropsIdle: 0, dropsAfterDele: 0, quits: 0, mismatches: 0, unexpectedErrors: 0, samples: [],
  };
}

class Mismatch extends Error {}
/** Thrown to end a session on purpose (the connection is already destroyed). */
class Dropped extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TIMEOUT_MS = 20_000;

export interface WorkerContext {
  rng: Rng;
  endpoints: { implicit: Endpoint; starttls: Endpoint };
  mailboxes: ExpectedMailbox[];
  counters: SoakCounters;
  /** Workers start no new session after `until.time` (ms since the epoch); lowering it stops them early. */
  until: { time: number };
}

export async function soakWorker(ctx: WorkerContext): Promise<void> {
  while (Date.now() < ctx.until.time) {
    const label = `session ${ctx.counters.sessions + 1}`;
    try {
      await oneSession(ctx);
    } catch (err) {
      if (err instanceof Dropped) continue;
      const kind = err instanceof Mismatch ? 'mismatch' : 'error';
      if (err instanceof Mismatch) ctx.counters.mismatches++;
      else ctx.counters.unexpectedErrors++;
      if (ctx.counters.samples.length < 20) ctx.counters.samples.push(`${label}: ${kind}: ${(err as Error).message}`);
      await sleep(50);
    }
  }
}

function check(cond: boolean, what: string): void {
  if (!cond) throw new Mismatch(what);
}

async function oneSession(ctx: WorkerContext): Promise<void> {
  const { rng, counters } = ctx;
  const mode = rng.chance(0.5) ? 'implicit' : 'starttls';
  const box = rng.pick(ctx.mailboxes);
  counters.sessions++;
  const c = await RawPop3.connect(ctx.endpoints[mode], TIMEOUT_MS);
  try {
    const t = <T>(p: Promise<T>, what: string) => c.withTimeout(p, TIMEOUT_MS, what);
    if (rng.chance(0.1)) {
      counters.badPasswords++;
      await t(c.ok(`USER ${box.user}`), 'USER');
      const reply = await t(c.command(`PASS wrong-${rng.int(0, 1e6)}`), 'PASS (wrong)');
      check(reply.startsWith('-ERR [AUTH]'), `a wrong password got "${reply}", not -ERR [AUTH]`);
      if (rng.chance(0.5)) {
        await t(c.quit(), 'QUIT');
        counters.quits++;
        return;
      }
    }
    await t(c.login(box.user, box.password), 'login');
    counters.logins++;
    const steps = rng.int(1, 12);
    for (let i = 0; i < steps; i++) {
      await randomCommand(ctx, c, box, t);
      if (rng.chance(0.2)) await sleep(rng.int(0, 150));
    }
    if (rng.chance(0.2)) {
      counters.dropsIdle++;
      c.destroy();
      return;
    }
    const bye = await t(c.quit(), 'QUIT');
    check(bye.startsWith('+OK'), `QUIT answered "${bye}"`);
    counters.quits++;
  } finally {
    c.destroy();
  }
}

type Timed = <T>(p: Promise<T>, what: string) => Promise<T>;

async function randomCommand(ctx: WorkerContext, c: RawPop3, box: ExpectedMailbox, t: Timed): Promise<void> {
  const { rng, counters } = ctx;
  const m = rng.pick(box.messages);
  counters.commands++;
  const roll = rng.next();
  if (roll < 0.1) {
    const r = await t(c.ok('STAT'), 'STAT');
    check(r === `+OK ${box.messages.length} ${box.totalOctets}`, `STAT answered "${r}"`);
  } else if (roll < 0.18) {
    const r = await t(c.multiline('LIST', true), 'LIST');
    check(r.body?.body?.toString('latin1') === box.listBody, 'LIST body differs from Dovecot\'s');
  } else if (roll < 0.24) {
    const r = await t(c.ok(`LIST ${m.n}`), 'LIST n');
    check(r === `+OK ${m.n} ${m.octets}`, `LIST ${m.n} answered "${r}"`);
  } else if (roll < 0.3) {
    const r = await t(c.multiline('UIDL', true), 'UIDL');
    check(r.body?.body?.toString('latin1') === box.uidlBody, 'UIDL body differs from Dovecot\'s');
  } else if (roll < 0.4) {
    const k = rng.int(0, 30);
    const r = await t(c.multiline(`TOP ${m.n} ${k}`, true), 'TOP');
    check(r.body?.body != null, `TOP ${m.n} ${k} answered "${r.status}"`);
    check(unstuff(r.body!.body!).equals(expectedTop(m.content, k)), `TOP ${m.n} ${k} differs from the message's first lines`);
    counters.topVerified++;
  } else if (roll < 0.62) {
    if (rng.chance(0.15)) {
      // Disconnect in the middle of the transfer.
      c.write(`RETR ${m.n}\r\n`);
      await sleep(rng.int(0, 20));
      counters.dropsMidRetr++;
      c.destroy();
      throw new Dropped('mid-RETR');
    }
    const r = await t(c.multiline(`RETR ${m.n}`, true), `RETR ${m.n}`);
    check(r.body?.body != null, `RETR ${m.n} answered "${r.status}"`);
    const content = unstuff(r.body!.body!);
    counters.retrOctets += content.length;
    check(content.length === m.octets && sha256(content) === m.sha256, `RETR ${m.n} of ${box.user}: ${content.length} bytes, sha256 differs from the backend's message`);
    counters.retrVerified++;
  } else if (roll < 0.72) {
    await t(c.ok('NOOP'), 'NOOP');
  } else if (roll < 0.77) {
    await t(c.ok('RSET'), 'RSET');
  } else if (roll < 0.82) {
    const r = await t(c.multiline('CAPA', true), 'CAPA');
    check(r.status.startsWith('+OK'), `CAPA answered "${r.status}"`);
  } else if (roll < 0.9) {
    await t(c.ok(`DELE ${m.n}`), 'DELE');
    if (rng.chance(0.5)) {
      counters.dropsAfterDele++;
      c.destroy();
      throw new Dropped('after DELE');
    }
    await t(c.ok('RSET'), 'RSET after DELE');
    const r = await t(c.ok('STAT'), 'STAT after RSET');
    check(r === `+OK ${box.messages.length} ${box.totalOctets}`, `STAT after DELE+RSET answered "${r}"`);
  } else {
    // Pipelined: several commands in one write, replies read in order.
    counters.pipelined++;
    c.write(`STAT\r\nNOOP\r\nLIST ${m.n}\r\nUIDL ${m.n}\r\nUIDL\r\nNOOP\r\n`);
    const stat = await t(c.readLine(), 'pipelined STAT');
    check(stat === `+OK ${box.messages.length} ${box.totalOctets}`, `pipelined STAT answered "${stat}"`);
    check((await t(c.readLine(), 'pipelined NOOP')).startsWith('+OK'), 'pipelined NOOP');
    const list = await t(c.readLine(), 'pipelined LIST n');
    check(list === `+OK ${m.n} ${m.octets}`, `pipelined LIST ${m.n} answered "${list}"`);
    const uidl = await t(c.readLine(), 'pipelined UIDL n');
    check(uidl === `+OK ${m.n} ${m.uid}`, `pipelined UIDL ${m.n} answered "${uidl}"`);
    const all = await t(c.readLine(), 'pipelined UIDL');
    check(all.startsWith('+OK'), `pipelined UIDL answered "${all}"`);
    const body = await t(c.readBody(true), 'pipelined UIDL body');
    check(body.body?.toString('latin1') === box.uidlBody, 'pipelined UIDL body differs from Dovecot\'s');
    check((await t(c.readLine(), 'pipelined NOOP')).startsWith('+OK'), 'pipelined last NOOP');
  }
}
