/**
 * Property tests over whole sessions: random sequences of valid and invalid commands, sent in
 * random chunks through a real in-process gateway to a model POP3 backend, with random client
 * aborts and backend faults. An oracle (GatewayModel below: RFC 1939 plus the gateway's
 * documented replies) predicts every reply byte for byte; relayed replies come from the same
 * model the backend runs.
 *
 * Reproduce a failure with the seed fast-check prints: POP3GW_FUZZ_SEED=<seed> (and
 * POP3GW_FUZZ_PATH=<path> to replay one case); POP3GW_FUZZ_RUNS sets the number of runs,
 * POP3GW_FUZZ_SHRINK=1 lets fast-check shrink a failure (slow).
 */
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LimitsConfig } from '../../src/config/schema.ts';
import { REPLIES, type ReplyKey } from '../../src/protocol/replies.ts';
import type { Pop3Session } from '../../src/relay/session.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { MODEL_MAILBOX, MODEL_USERS, Pop3Model, startModelBackend, type BackendFault, type ModelBackend } from '../harness/model-backend.ts';

// ---- items: what the client sends --------------------------------------------------------

type SaslData =
  | { readonly kind: 'plain'; readonly user: string; readonly password: string }
  | { readonly kind: 'login-field'; readonly value: string }
  | { readonly kind: 'cancel' }
  | { readonly kind: 'garbage' };

interface Item {
  readonly bytes: Buffer;
  readonly label: string;
  /** What this line means as SASL data (AUTH initial response, or the line after a challenge). */
  readonly sasl?: SaslData;
  /** Strings that must never appear in logs or audit. */
  readonly secrets?: readonly string[];
}

function item(text: string, term = '\r\n', extra: Omit<Item, 'bytes' | 'label'> = {}): Item {
  const label = text.length > 48 ? `${JSON.stringify(text.slice(0, 24))}…(${text.length} bytes)` : JSON.stringify(text);
  // fast-check prints counterexamples with this, instead of every byte of every Buffer.
  const it: Item = { bytes: Buffer.from(text + term, 'latin1'), label, ...extra };
  return Object.assign(it, { [fc.toStringMethod]: () => label });
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const KNOWN = ['CAPA', 'USER', 'PASS', 'APOP', 'AUTH', 'STLS', 'STAT', 'LIST', 'UIDL', 'TOP', 'RETR', 'DELE', 'NOOP', 'RSET', 'QUIT'];

const term = fc.constantFrom('\r\n', '\r\n', '\r\n', '\n');
const anyCase = (verb: string): fc.Arbitrary<string> => fc.constantFrom(verb, verb.toLowerCase(), verb[0] + verb.slice(1).toLowerCase());
const wrongPassword = fc.stringMatching(/^[A-Za-z0-9]{6,12}$/).map((s) => `Pw${s}`);
const userName = fc.constantFrom('alice', 'bob', 'nobody', 'ALICE');
const msgNo = fc.integer({ min: 1, max: MODEL_MAILBOX.length + 2 });
const argToken = fc.oneof(
  fc.integer({ min: 0, max: 8 }).map(String),
  fc.constantFrom('999999999', '1234567890', '-1', '1a', 'x', '00001'),
  fc.stringMatching(/^[a-z]{1,6}$/),
);

/** Credentials: the right ones for a real user, or a wrong password. */
const credentials = fc.oneof(
  fc.constantFrom(...Object.entries(MODEL_USERS)).map(([user, password]) => ({ user, password })),
  fc.record({ user: userName, password: wrongPassword }),
);

const loginItems: fc.Arbitrary<Item[]> = fc.tuple(credentials, fc.integer({ min: 0, max: 4 }), term).map(([c, how, t]) => {
  const plain = b64(`\0${c.user}\0${c.password}`);
  const secrets = [c.password, plain, b64(c.password)];
  const data = { kind: 'plain', user: c.user, password: c.password } as const;
  switch (how) {
    case 0:
    case 1:
      return [item(`USER ${c.user}`, t), item(`PASS ${c.password}`, t, { secrets })];
    case 2:
      return [item(`AUTH PLAIN ${plain}`, t, { sasl: data, secrets })];
    case 3:
      return [item('AUTH PLAIN', t), item(plain, t, { sasl: data, secrets })];
    default:
      return [
        item('AUTH LOGIN', t),
        item(b64(c.user), t, { sasl: { kind: 'login-field', value: c.user } }),
        item(b64(c.password), t, { sasl: { kind: 'login-field', value: c.password }, secrets }),
      ];
  }
});

const authMisc: fc.Arbitrary<Item[]> = fc.constantFrom<Item[]>(
  [item('AUTH')],
  [item('AUTH XFOO')],
  [item('auth plain *', '\r\n', { sasl: { kind: 'cancel' } })],
  [item('AUTH PLAIN'), item('*', '\r\n', { sasl: { kind: 'cancel' } })],
  [item('AUTH PLAIN'), item('!!not-base64', '\r\n', { sasl: { kind: 'garbage' } })],
  [item('AUTH PLAIN %%%', '\r\n', { sasl: { kind: 'garbage' } })],
  [item('AUTH LOGIN'), item('*', '\r\n', { sasl: { kind: 'cancel' } })],
  [item(`AUTH LOGIN ${b64('alice')}`, '\r\n', { sasl: { kind: 'login-field', value: 'alice' } }), item('*', '\r\n', { sasl: { kind: 'cancel' } })],
  [item('APOP alice 0123456789abcdef0123456789abcdef')],
  [item('AUTH PLAIN'), item('AAAA'.repeat(250), '\r\n', { sasl: { kind: 'garbage' } })],
  [item('AUTH PLAIN'), item('A'.repeat(17_000), '\r\n', { sasl: { kind: 'garbage' } })],
);

const transactionItem: fc.Arbitrary<Item[]> = fc.oneof(
  fc.tuple(fc.constantFrom('STAT', 'NOOP', 'RSET', 'LIST', 'UIDL'), term).map(([v, t]) => [item(v, t)]),
  fc.tuple(fc.constantFrom('LIST', 'UIDL', 'RETR', 'DELE'), msgNo, term).map(([v, n, t]) => [item(`${v} ${n}`, t)]),
  fc.tuple(msgNo, fc.constantFrom(0, 1, 3, 50), term).map(([n, k, t]) => [item(`TOP ${n} ${k}`, t)]),
  fc.tuple(anyCase('RETR'), msgNo).map(([v, n]) => [item(`${v} ${n}`)]),
);

const randomKnown: fc.Arbitrary<Item[]> = fc
  .tuple(fc.constantFrom(...KNOWN.filter((v) => v !== 'PASS' && v !== 'AUTH' && v !== 'STLS' && v !== 'QUIT')), fc.array(argToken, { maxLength: 3 }), term)
  .chain(([v, args, t]) => anyCase(v).map((verb) => [item([verb, ...args].join(' '), t)]));

const unknownVerb: fc.Arbitrary<Item[]> = fc
  .tuple(fc.stringMatching(/^[A-Za-z]{1,20}$/).filter((v) => !KNOWN.includes(v.toUpperCase())), fc.array(argToken, { maxLength: 2 }), term)
  .map(([v, args, t]) => [item([v, ...args].join(' '), t)]);

const badVerb: fc.Arbitrary<Item[]> = fc.constantFrom('X1 foo', '*', '', '   ', ' NOOP', 'NO-OP', '12345', 'NOOP\t').map((s) => [item(s)]);
const controlBytes: fc.Arbitrary<Item[]> = fc.constantFrom('NO\rOP', 'NOOP\0', 'USER al\0ice', '\r', 'STAT\r', 'LIST\x001', '\x00', 'RETR 1\x7f').map((s) => [item(s)]);
/** Lines whose length with CRLF is 254, 255 (the limit) or 256 bytes. */
const boundaryLine: fc.Arbitrary<Item[]> = fc.constantFrom(252, 253, 254).map((n) => [item(`XPAD ${'p'.repeat(n - 5)}`)]);
const overLong: fc.Arbitrary<Item[]> = fc.integer({ min: 256, max: 4000 }).map((n) => [item(`NOOP ${'a'.repeat(n)}`)]);
const flood: fc.Arbitrary<Item[]> = fc.integer({ min: 64 * 1024, max: 300 * 1024 }).map((n) => [item('F'.repeat(n))]);
const burst: fc.Arbitrary<Item[]> = fc.integer({ min: 10, max: 120 }).map((n) => Array.from({ length: n }, (_, i) => item(i % 2 === 0 ? 'NOOP' : 'STAT')));

const itemGroup: fc.Arbitrary<Item[]> = fc.oneof(
  { arbitrary: transactionItem, weight: 8 },
  { arbitrary: loginItems, weight: 3 },
  { arbitrary: fc.constant<Item[]>([item('STLS')]), weight: 2 },
  { arbitrary: fc.constant<Item[]>([item('CAPA')]), weight: 2 },
  { arbitrary: randomKnown, weight: 3 },
  { arbitrary: authMisc, weight: 2 },
  { arbitrary: unknownVerb, weight: 1 },
  { arbitrary: badVerb, weight: 1 },
  { arbitrary: controlBytes, weight: 1 },
  { arbitrary: boundaryLine, weight: 1 },
  { arbitrary: overLong, weight: 1 },
  { arbitrary: flood, weight: 1 },
  { arbitrary: burst, weight: 1 },
  { arbitrary: fc.constant<Item[]>([item('QUIT')]), weight: 1 },
);

const garbage = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => Buffer.concat([Buffer.from('*'), Buffer.from(b), Buffer.from('\r\n')])),
  fc.constant(Buffer.from(`${'G'.repeat(600)}\r\n`)),
  fc.constant(Buffer.from('HTTP/1.1 200 OK\r\n\r\n')),
);

const atCommand = fc.oneof(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 14 }));
const faultArb: fc.Arbitrary<BackendFault> = fc.oneof(
  fc.record({ kind: fc.constant('close' as const), atCommand, keep: fc.double({ min: 0, max: 0.999, noNaN: true }) }),
  fc.record({ kind: fc.constant('stall' as const), atCommand }),
  fc.record({ kind: fc.constant('garbage' as const), atCommand, bytes: garbage }),
);

type Chunking = 'per-item' | 'one' | number[];

interface Scenario {
  readonly listener: 'pop3' | 'pop3s';
  readonly pipelining: boolean;
  readonly opener: boolean;
  readonly groups: Item[][];
  readonly chunking: Chunking;
  readonly finish: 'quit' | 'end' | 'destroy';
  /** Where the client drops the connection: a fraction of its writes. */
  readonly abortAt: number | null;
  readonly fault: BackendFault | null;
}

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  listener: fc.constantFrom('pop3' as const, 'pop3s' as const),
  pipelining: fc.boolean(),
  opener: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 }),
  groups: fc.array(itemGroup, { maxLength: 24 }),
  chunking: fc.oneof(
    fc.constant<Chunking>('per-item'),
    fc.constant<Chunking>('one'),
    fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 40 }),
  ),
  finish: fc.constantFrom('quit' as const, 'end' as const, 'destroy' as const),
  abortAt: fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: fc.double({ min: 0, max: 0.999, noNaN: true }), weight: 1 }),
  fault: fc.oneof({ arbitrary: fc.constant(null), weight: 2 }, { arbitrary: faultArb, weight: 1 }),
});

// ---- the oracle ---------------------------------------------------------------------------

type Expect =
  | { readonly kind: 'exact'; readonly bytes: Buffer; readonly multi: boolean }
  /** The gateway's own CAPA: multi-line, with STLS / USER / SASL exactly when they are usable. */
  | { readonly kind: 'capa'; readonly stls: boolean; readonly user: boolean; readonly sasl: boolean };

interface Step {
  readonly expect: Expect | null;
  readonly stls?: boolean;
  readonly closes?: boolean;
}

const exact = (text: string, multi = false): Expect => ({ kind: 'exact', bytes: Buffer.from(`${text}\r\n`, 'latin1'), multi });
const AUTHORIZATION_VERBS = new Set(['CAPA', 'USER', 'PASS', 'APOP', 'AUTH', 'STLS', 'QUIT']);
const LOGIN_VERBS = new Set(['USER', 'PASS', 'APOP', 'AUTH']);
const ARITY: Record<string, [number, number]> = {
  CAPA: [0, 0], USER: [1, 1], PASS: [1, Infinity], APOP: [2, 2], AUTH: [0, 2], STLS: [0, 0], STAT: [0, 0], LIST: [0, 1],
  UIDL: [0, 1], TOP: [2, 2], RETR: [1, 1], DELE: [1, 1], NOOP: [0, 0], RSET: [0, 0], QUIT: [0, 0],
};
const NUMERIC = new Set(['LIST', 'UIDL', 'RETR', 'DELE', 'TOP']);
const MULTILINE_ON_OK = (verb: string, argc: number): boolean => verb === 'RETR' || verb === 'TOP' || ((verb === 'LIST' || verb === 'UIDL') && argc === 0);

interface ModelLimits {
  readonly limits: LimitsConfig;
  readonly maxAttempts: number;
}

/** What the gateway must answer, line by line, in front of the model backend. */
class GatewayModel {
  phase: 'auth' | 'sasl' | 'trans' | 'closed' = 'auth';
  tls: boolean;
  private sasl: { mech: 'PLAIN' | 'LOGIN'; user: string | null } | null = null;
  private userGiven: string | null = null;
  private invalidCount = 0;
  private failures = 0;
  private backend: Pop3Model | null = null;

  constructor(readonly listener: 'starttls' | 'implicit', private readonly cfg: ModelLimits) {
    this.tls = listener === 'implicit';
  }

  clone(): GatewayModel {
    if (this.backend !== null) throw new Error('oracle: clone() is only for the STLS look-ahead before login');
    const c = new GatewayModel(this.listener, this.cfg);
    Object.assign(c, { phase: this.phase, tls: this.tls, sasl: this.sasl && { ...this.sasl }, userGiven: this.userGiven, invalidCount: this.invalidCount, failures: this.failures });
    return c;
  }

  private get plainAllowed(): boolean {
    return this.tls;
  }

  step(it: Item): Step {
    if (this.phase === 'closed') return { expect: null };
    const max = this.phase === 'sasl' ? this.cfg.limits.saslLine : this.cfg.limits.commandLine;
    if (it.bytes.length > max) {
      // An over-long SASL response ends the exchange, as "*" would (RFC 5034 section 4).
      if (this.phase === 'sasl') {
        this.phase = 'auth';
        this.sasl = null;
      }
      return this.invalid('lineTooLong');
    }
    if (this.phase === 'sasl') {
      if (it.sasl === undefined) throw new Error(`oracle: no SASL meaning for ${it.label}`);
      return this.saslData(it.sasl);
    }
    let content = it.bytes.subarray(0, it.bytes.length - 1);
    if (content.at(-1) === 13) content = content.subarray(0, -1);
    for (const b of content) if ((b < 0x20 && b !== 0x09) || b === 0x7f) return this.invalid('badSyntax');
    if ([...content].every((b) => b === 0x20 || b === 0x09)) return this.invalid('badSyntax');
    const text = content.toString('latin1');
    const sp = text.indexOf(' ');
    const verbText = sp < 0 ? text : text.slice(0, sp);
    if (!/^[A-Za-z]{1,16}$/.test(verbText)) return this.invalid('unknownCommand');
    const verb = verbText.toUpperCase();
    const rest = sp < 0 ? '' : text.slice(sp + 1);
    const args = rest.split(' ').filter((a) => a !== '');
    const arity = ARITY[verb];
    if (arity === undefined) return this.invalid('unknownCommand');
    const argsOk = verb === 'PASS' ? args.length >= 1
      : args.length >= arity[0] && args.length <= arity[1] && (!NUMERIC.has(verb) || (args.every((a) => /^\d{1,9}$/.test(a)) && (args.length === 0 || Number(args[0]) !== 0)));
    if (!argsOk) return this.invalid('badSyntax');
    return this.phase === 'auth' ? this.authorization(verb, args, rest, it) : this.transaction(verb, args);
  }

  private local(key: ReplyKey, multi = false): Step {
    return { expect: exact(REPLIES[key], multi) };
  }

  private invalid(key: ReplyKey): Step {
    this.invalidCount++;
    if (this.invalidCount >= this.cfg.limits.maxInvalidCommands) {
      this.phase = 'closed';
      return { expect: exact(REPLIES.tooManyInvalid), closes: true };
    }
    return this.local(key);
  }

  private authorization(verb: string, args: string[], rest: string, it: Item): Step {
    if (!AUTHORIZATION_VERBS.has(verb)) return this.local('badState');
    // PASS before STLS: the missing TLS, not the missing USER, is what the client hears about.
    if (verb === 'PASS' && this.userGiven === null) return this.local(this.plainAllowed ? 'passWithoutUser' : 'stlsFirst');
    if (verb === 'USER' && this.userGiven !== null) return this.local('badState');
    switch (verb) {
      case 'CAPA':
        return { expect: { kind: 'capa', stls: this.listener === 'starttls' && !this.tls, user: this.plainAllowed, sasl: this.plainAllowed } };
      case 'QUIT':
        this.phase = 'closed';
        return { expect: exact(REPLIES.quitBeforeLogin), closes: true };
      case 'STLS':
        if (this.listener !== 'starttls') return this.local('stlsUnavailable');
        if (this.tls) return this.local('stlsAlreadyActive');
        this.tls = true;
        this.userGiven = null;
        return { expect: exact(REPLIES.stlsBegin), stls: true };
    }
    if (!this.plainAllowed) return this.local('stlsFirst');
    switch (verb) {
      case 'USER':
        this.userGiven = args[0]!;
        return this.local('userAccepted');
      case 'PASS': {
        const user = this.userGiven!;
        this.userGiven = null;
        return this.login(user, rest);
      }
      case 'APOP':
        return this.local('apopUnavailable');
      default: { // AUTH
        if (args.length === 0) return { expect: exact('+OK\r\nPLAIN\r\nLOGIN\r\n.', true) };
        const mech = args[0]!.toUpperCase();
        if (mech !== 'PLAIN' && mech !== 'LOGIN') return this.local('mechanismUnsupported');
        this.sasl = { mech, user: null };
        if (args[1] === undefined) {
          this.phase = 'sasl';
          return { expect: exact(mech === 'PLAIN' ? '+ ' : `+ ${b64('Username:')}`) };
        }
        if (it.sasl === undefined) throw new Error(`oracle: no SASL meaning for ${it.label}`);
        return this.saslData(it.sasl);
      }
    }
  }

  private saslData(d: SaslData): Step {
    const sasl = this.sasl!;
    this.phase = 'auth';
    if (d.kind === 'cancel') {
      this.sasl = null;
      return this.local('authCancelled');
    }
    if (d.kind === 'garbage') {
      this.sasl = null;
      return this.local('badBase64');
    }
    if (d.kind === 'plain') {
      if (sasl.mech !== 'PLAIN') throw new Error('oracle: PLAIN data in a LOGIN exchange');
      return this.login(d.user, d.password);
    }
    if (sasl.mech !== 'LOGIN') throw new Error('oracle: LOGIN data in a PLAIN exchange');
    if (sasl.user === null) {
      sasl.user = d.value;
      this.phase = 'sasl';
      return { expect: exact(`+ ${b64('Password:')}`) };
    }
    return this.login(sasl.user, d.value);
  }

  private login(user: string, password: string): Step {
    this.sasl = null;
    this.userGiven = null;
    if (Object.hasOwn(MODEL_USERS, user) && MODEL_USERS[user] === password) {
      this.phase = 'trans';
      this.backend = Pop3Model.loggedIn();
      return { expect: exact('+OK Logged in.') };
    }
    this.phase = 'auth';
    this.failures++;
    if (this.failures >= this.cfg.maxAttempts) {
      this.phase = 'closed';
      return { expect: exact(REPLIES.authFailed), closes: true };
    }
    return this.local('authFailed');
  }

  private transaction(verb: string, args: string[]): Step {
    if (LOGIN_VERBS.has(verb)) return this.local('alreadyLoggedIn');
    if (verb === 'STLS') return this.local('badState');
    if (verb === 'CAPA') return { expect: { kind: 'capa', stls: false, user: false, sasl: false } };
    const r = this.backend!.handle([verb, ...args].join(' '));
    if (verb === 'QUIT') {
      this.phase = 'closed';
      return { expect: { kind: 'exact', bytes: r.reply, multi: false }, closes: true };
    }
    return { expect: { kind: 'exact', bytes: r.reply, multi: MULTILINE_ON_OK(verb, args.length) } };
  }
}

function checkCapa(reply: Buffer, e: Expect & { kind: 'capa' }): string | null {
  const lines = reply.toString('latin1').split('\r\n');
  if (!lines[0]!.startsWith('+OK') || lines.at(-1) !== '' || lines.at(-2) !== '.') return 'not a multi-line +OK reply';
  const caps = lines.slice(1, -2);
  if (caps.includes('STLS') !== e.stls) return `STLS ${e.stls ? 'missing' : 'offered'}`;
  if (caps.includes('USER') !== e.user) return `USER ${e.user ? 'missing' : 'offered'}`;
  if (caps.some((c) => c.startsWith('SASL ')) !== e.sasl) return `SASL ${e.sasl ? 'missing' : 'offered'}`;
  if (!caps.includes('PIPELINING')) return 'PIPELINING missing';
  return null;
}

// ---- the plan: writes, and where the client waits ----------------------------------------

type Action =
  | { readonly type: 'write'; readonly from: number; readonly to: number }
  /** Read every expected reply before index `upTo` (exclusive). */
  | { readonly type: 'read'; readonly upTo: number }
  /** Read up to `upTo`, check nothing follows the STLS +OK in plaintext, then upgrade to TLS. */
  | { readonly type: 'starttls'; readonly upTo: number };

interface Plan {
  readonly stream: Buffer;
  readonly items: readonly Item[];
  readonly actions: readonly Action[];
  readonly expects: ReadonlyArray<{ readonly item: number; readonly e: Expect }>;
  readonly injected: readonly number[];
  readonly closed: boolean;
  readonly reachedTransaction: boolean;
}

/** Bytes after an accepted STLS, sent in the same write (a client must not, RFC 2595 §4). */
const MAX_INJECTED = 512;

function buildPlan(s: Scenario, newModel: () => GatewayModel): Plan {
  const wanted: Item[] = [];
  if (s.opener) {
    if (s.listener === 'pop3') wanted.push(item('STLS'));
    wanted.push(item('USER alice'), item('PASS alice-secret', '\r\n', { secrets: ['alice-secret'] }));
  }
  for (const g of s.groups) wanted.push(...g);
  if (s.finish === 'quit') wanted.push(item('QUIT'));

  // Pass 1: before an accepted STLS the client waits for every earlier reply; when the line
  // before it overflowed, its tail may still be unread then, so a NOOP goes first.
  const look = newModel();
  const items: Item[] = [];
  for (const it of wanted) {
    if (look.phase === 'auth' && look.clone().step(it).stls === true && (items.at(-1)?.bytes.length ?? 0) > 255) {
      const noop = item('NOOP');
      look.step(noop);
      items.push(noop);
    }
    look.step(it);
    items.push(it);
  }

  const offsets = [0];
  for (const it of items) offsets.push(offsets.at(-1)! + it.bytes.length);
  const total = offsets.at(-1)!;
  const cuts = s.chunking === 'per-item' ? offsets.slice(1, -1)
    : s.chunking === 'one' ? []
    : [...new Set(s.chunking.map((f) => Math.floor(f * total)).filter((c) => c > 0 && c < total))].sort((a, b) => a - b);

  const actions: Action[] = [];
  const writes = (from: number, to: number): void => {
    let p = from;
    for (const c of cuts) {
      if (c > from && c < to) {
        actions.push({ type: 'write', from: p, to: c });
        p = c;
      }
    }
    if (to > p) actions.push({ type: 'write', from: p, to });
  };
  const model = newModel();
  const expects: Array<{ item: number; e: Expect }> = [];
  const injected: number[] = [];
  let reachedTransaction = false;
  let pos = 0;
  for (let i = 0; i < items.length; i++) {
    const before = expects.length;
    const step = model.step(items[i]!);
    if (step.expect !== null) expects.push({ item: i, e: step.expect });
    if (model.phase === 'trans') reachedTransaction = true;
    if (step.stls !== true) continue;
    writes(pos, offsets[i]!);
    actions.push({ type: 'read', upTo: before });
    const end = offsets[i + 1]!;
    const cut = Math.min(cuts.find((c) => c >= end) ?? total, end + MAX_INJECTED);
    actions.push({ type: 'write', from: offsets[i]!, to: cut });
    actions.push({ type: 'starttls', upTo: expects.length });
    let j = i + 1;
    for (; j < items.length && offsets[j]! < cut; j++) injected.push(j);
    pos = offsets[j]!;
    i = j - 1;
  }
  writes(pos, total);
  return {
    stream: Buffer.concat(items.map((it) => it.bytes)), items, actions, expects, injected,
    closed: model.phase === 'closed', reachedTransaction,
  };
}

// ---- the client ---------------------------------------------------------------------------

class WireClient {
  private sock: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  eof = false;
  private waiters = new Set<() => void>();

  private constructor(sock: net.Socket) {
    this.sock = sock;
    this.attach(sock);
  }

  static open(port: number, implicitTls: boolean): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const s = implicitTls
        ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false })
        : net.connect({ host: '127.0.0.1', port });
      s.setNoDelay(true);
      s.once(implicitTls ? 'secureConnect' : 'connect', () => {
        s.off('error', reject);
        resolve(new WireClient(s));
      });
      s.once('error', reject);
    });
  }

  private attach(s: net.Socket): void {
    s.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.poke();
    });
    s.on('error', () => undefined); // resets are expected in hostile runs; 'close' ends the stream
    s.on('close', () => {
      this.eof = true;
      this.poke();
    });
  }

  private poke(): void {
    for (const w of [...this.waiters]) w();
  }

  get pending(): Buffer {
    return this.buf;
  }

  write(b: Buffer): void {
    if (!this.sock.destroyed && this.sock.writable) this.sock.write(b);
  }

  /** Waits until `ready()` or end of stream; false on end of stream without it. Throws on timeout. */
  private async until(ready: () => boolean, timeoutMs: number, what: string): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.eof) return false;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`client: timed out after ${timeoutMs} ms waiting for ${what}; unread ${JSON.stringify(this.buf.toString('latin1').slice(0, 200))}`);
      await new Promise<void>((resolve) => {
        const w = (): void => {
          clearTimeout(t);
          this.waiters.delete(w);
          resolve();
        };
        const t = setTimeout(w, left);
        this.waiters.add(w);
      });
    }
    return true;
  }

  /** One reply: the status line, plus the body up to ".\r\n" when `multi` and the status is +OK. */
  async readReply(multi: boolean, timeoutMs: number): Promise<{ bytes: Buffer; complete: boolean }> {
    let end = -1;
    const found = await this.until(() => {
      const nl = this.buf.indexOf(10);
      if (nl < 0) return false;
      if (!(multi && this.buf.subarray(0, 3).toString('latin1') === '+OK')) {
        end = nl + 1;
        return true;
      }
      // The status line's own CRLF starts the search, so an empty body is found too.
      const t = this.buf.indexOf('\r\n.\r\n', Math.max(0, nl - 1));
      if (t < 0) return false;
      end = t + 5;
      return true;
    }, timeoutMs, 'a reply');
    if (!found) {
      const bytes = this.buf;
      this.buf = Buffer.alloc(0);
      return { bytes, complete: false };
    }
    const bytes = this.buf.subarray(0, end);
    this.buf = this.buf.subarray(end);
    return { bytes, complete: true };
  }

  /** Everything until the server closes. */
  async readToEof(timeoutMs: number): Promise<Buffer> {
    await this.until(() => false, timeoutMs, 'the server to close');
    const rest = this.buf;
    this.buf = Buffer.alloc(0);
    return rest;
  }

  async upgrade(timeoutMs: number): Promise<void> {
    const plain = this.sock;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = tls.connect({ socket: plain, rejectUnauthorized: false });
    this.sock = secure;
    this.attach(secure);
    let done = false;
    secure.once('secureConnect', () => {
      done = true;
      this.poke();
    });
    if (!(await this.until(() => done, timeoutMs, 'the STLS handshake'))) throw new Error('client: connection closed during the STLS handshake');
  }

  end(): void {
    this.sock.end();
  }

  destroy(): void {
    this.sock.destroy();
  }
}

// ---- running one scenario -----------------------------------------------------------------

interface Rig {
  gw: TestGateway;
  backend: ModelBackend;
}

interface RunStats {
  runs: number;
  transaction: number;
  stls: number;
  injected: number;
  faultsFired: number;
  aborts: number;
  divergences: number;
  commands: number;
  maxDecoderBuffered: number;
  maxQueue: number;
}

const SYS_LINES = [REPLIES.backendUnavailable, REPLIES.backendTimeout, REPLIES.backendProtocol].map((t) => Buffer.from(`${t}\r\n`, 'latin1'));

const isPrefix = (p: Buffer, of: Buffer): boolean => p.length <= of.length && of.subarray(0, p.length).equals(p);
const show = (b: Buffer): string => JSON.stringify(b.length > 300 ? `${b.toString('latin1', 0, 150)}…${b.toString('latin1', b.length - 100)}` : b.toString('latin1'));

function sessionsOf(gw: TestGateway): Pop3Session[] {
  // The registry keeps its map private; tests look inside to check what each session holds.
  return [...(gw.gw.registry as unknown as { sessions: Map<string, Pop3Session> }).sessions.values()];
}

async function waitFor(what: () => string, ready: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function runScenario(s: Scenario, rig: Rig, stats: RunStats): Promise<void> {
  const { gw, backend } = rig;
  const limits = gw.config.limits;
  const cfg = { limits, maxAttempts: gw.config.policy.auth.maxAttemptsPerSession };
  const plan = buildPlan(s, () => new GatewayModel(s.listener === 'pop3' ? 'starttls' : 'implicit', cfg));
  const firedBefore = backend.fired.length;
  const faultFired = (): boolean => backend.fired.length > firedBefore;
  const trace = (): string => [
    `listener ${s.listener}, pipelining ${s.pipelining}, fault ${JSON.stringify(s.fault)}, abort ${s.abortAt}, finish ${s.finish}`,
    `items: ${plan.items.map((it, i) => `${i}:${it.label}${plan.injected.includes(i) ? '(injected)' : ''}`).join(' ')}`,
  ].join('\n');
  stats.runs++;
  stats.commands += plan.items.length;
  if (plan.reachedTransaction) stats.transaction++;
  if (plan.actions.some((a) => a.type === 'starttls')) stats.stls++;
  if (plan.injected.length > 0) stats.injected++;

  let maxBuffered = 0;
  let maxQueue = 0;
  const sampler = setInterval(() => {
    for (const sess of sessionsOf(gw)) {
      maxBuffered = Math.max(maxBuffered, sess.decoder.buffered);
      maxQueue = Math.max(maxQueue, sess.queue.length);
    }
  }, 2);
  sampler.unref(); // cleared below; unref'ed so a failed run cannot keep the worker alive
  backend.arm(s.fault);
  const client = await WireClient.open(gw.port[s.listener]!, s.listener === 'pop3s');
  try {
    const greeting = await client.readReply(false, 5000);
    expect(greeting.bytes.toString('latin1')).toBe(`${REPLIES.greeting}\r\n`);

    let next = 0;
    let diverged = false;
    /** Reads expected replies up to `upTo`; false once the stream legitimately diverged (a fault). */
    const readUpTo = async (upTo: number): Promise<boolean> => {
      for (; next < upTo && !diverged; next++) {
        const { item: idx, e } = plan.expects[next]!;
        const r = await client.readReply(e.kind === 'capa' || e.multi, 5000);
        const mismatch = !r.complete ? 'the connection closed'
          : e.kind === 'capa' ? checkCapa(r.bytes, e)
          : r.bytes.equals(e.bytes) ? null : `got ${show(r.bytes)}, expected ${show(e.bytes)}`;
        if (mismatch === null) continue;
        if (!faultFired()) throw new Error(`reply ${next} to item ${idx} ${plan.items[idx]!.label}: ${mismatch}\n${trace()}`);
        // A backend fault: what follows is either part of this reply and then the end (never an
        // -ERR inside a body), or, when none of this reply was written yet, one [SYS/TEMP] line.
        const tail = Buffer.concat([r.bytes, await client.readToEof(3000)]);
        const want = e.kind === 'exact' ? e.bytes : Buffer.alloc(0);
        const ok = isPrefix(tail, want) || SYS_LINES.some((l) => tail.equals(l));
        if (!ok) throw new Error(`after backend fault ${JSON.stringify(backend.fired.at(-1))}, reply ${next} to ${plan.items[idx]!.label}: got ${show(tail)}\n${trace()}`);
        diverged = true;
        stats.divergences++;
      }
      return !diverged;
    };

    const writeCount = plan.actions.filter((a) => a.type === 'write').length;
    const abortAfter = s.abortAt === null ? -1 : Math.floor(s.abortAt * writeCount);
    let writesDone = 0;
    let aborted = false;
    for (const a of plan.actions) {
      if (a.type === 'write') {
        client.write(plan.stream.subarray(a.from, a.to));
        if (writesDone++ === abortAfter) {
          aborted = true;
          break;
        }
        continue;
      }
      if (!(await readUpTo(a.upTo))) break;
      if (a.type === 'starttls') {
        if (client.pending.length > 0) throw new Error(`plaintext after the STLS +OK: ${show(client.pending)}\n${trace()}`);
        await client.upgrade(5000);
      }
    }
    if (aborted) {
      stats.aborts++;
      client.destroy();
    } else {
      if (await readUpTo(plan.expects.length)) {
        if (!plan.closed) {
          if (s.finish === 'destroy') client.destroy();
          else client.end();
        }
        if (s.finish !== 'destroy' || plan.closed) {
          const extra = await client.readToEof(3000);
          const tolerated = faultFired() && SYS_LINES.some((l) => l.equals(extra));
          if (extra.length > 0 && !tolerated) throw new Error(`bytes after the last expected reply: ${show(extra)}\n${trace()}`);
        }
      }
    }
  } finally {
    client.destroy();
    backend.arm(null);
  }
  if (faultFired()) stats.faultsFired++;

  // Every session ends and lets go of its backend connection.
  try {
    await waitFor(() => `the gateway to end every session (${gw.gw.registry.size} left)\n${trace()}`, () => gw.gw.registry.size === 0, 3000);
    await backend.waitIdle(3000);
  } finally {
    clearInterval(sampler);
  }
  stats.maxDecoderBuffered = Math.max(stats.maxDecoderBuffered, maxBuffered);
  stats.maxQueue = Math.max(stats.maxQueue, maxQueue);
  // A client cannot make a session hold more than the input cap plus a couple of socket reads,
  // or more queued replies than the pipeline depth plus the gateway's own look-ups.
  expect(maxBuffered, 'bytes held by one session\'s line decoder').toBeLessThanOrEqual(32 * 1024 + 2 * 64 * 1024);
  expect(maxQueue, 'entries in one session\'s pending queue').toBeLessThanOrEqual(limits.pipelineDepth + 2 * MODEL_MAILBOX.length + 4);

  // No password (or base64 carrying one) in the logs or the audit.
  const secrets = plan.items.flatMap((it) => it.secrets ?? []);
  const logs = gw.logs.text();
  const audit = fs.existsSync(gw.auditFile) ? fs.readFileSync(gw.auditFile, 'latin1') : '';
  for (const secret of secrets) {
    if (logs.includes(secret)) throw new Error(`secret ${JSON.stringify(secret)} found in the logs\n${trace()}`);
    if (audit.includes(secret)) throw new Error(`secret ${JSON.stringify(secret)} found in the audit\n${trace()}`);
  }
}

// ---- the tests ----------------------------------------------------------------------------

const FUZZ_CONFIG = {
  backend: { probeInterval: '1h', connectTimeout: '2s' },
  tls: { handshakeTimeout: '3s' },
  policy: {
    auth: { failureDelay: '20ms', maxFailuresPerIp: 1_000_000, maxFailuresPerUser: 1_000_000, maxAttemptsPerSession: 3 },
    connections: { maxPerIp: 1000 },
    // Long enough that a busy machine does not fake a stall, short enough that real stalls end runs.
    timeouts: { backendReply: '1500ms', auth: '20s', idle: '20s' },
  },
  limits: { commandLine: 255, saslLine: 16384, pipelineDepth: 64, maxInvalidCommands: 10 },
};

describe('whole sessions with random commands, chunking and faults', () => {
  const rigs = new Map<boolean, Rig>();

  beforeAll(async () => {
    for (const pipelining of [true, false]) {
      const backend = await startModelBackend({ pipelining });
      const gw = await startTestGateway(backend.port, FUZZ_CONFIG);
      rigs.set(pipelining, { gw, backend });
    }
  });

  afterAll(async () => {
    for (const { gw, backend } of rigs.values()) {
      await gw.stop();
      await backend.close();
    }
  });

  it('answers every command in order, exactly as the model says, and every session ends cleanly', async () => {
    const seed = process.env.POP3GW_FUZZ_SEED !== undefined ? Number(process.env.POP3GW_FUZZ_SEED) : undefined;
    const numRuns = Number(process.env.POP3GW_FUZZ_RUNS ?? 100);
    const stats: RunStats = { runs: 0, transaction: 0, stls: 0, injected: 0, faultsFired: 0, aborts: 0, divergences: 0, commands: 0, maxDecoderBuffered: 0, maxQueue: 0 };
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (s) => runScenario(s, rigs.get(s.pipelining)!, stats)),
      {
        numRuns,
        ...(seed !== undefined ? { seed } : {}),
        ...(process.env.POP3GW_FUZZ_PATH !== undefined ? { path: process.env.POP3GW_FUZZ_PATH } : {}),
        endOnFailure: process.env.POP3GW_FUZZ_SHRINK !== '1',
        verbose: 1,
      },
    );
    console.log(`fuzz: ${JSON.stringify({ ...stats, ms: Date.now() - started })}`);
    // The generators must reach the interesting places, or the runs prove little.
    expect(stats.transaction).toBeGreaterThan(numRuns / 5);
    expect(stats.stls).toBeGreaterThan(0);
  }, 120_000);

  it('pairs every audited connect with a disconnect', async () => {
    for (const { gw } of rigs.values()) {
      const events = gw.auditLines().map((l) => l.event);
      expect(events.filter((e) => e === 'connect').length).toBeGreaterThan(0);
      expect(events.filter((e) => e === 'disconnect').length).toBe(events.filter((e) => e === 'connect').length);
    }
  });
});
