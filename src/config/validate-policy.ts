/** `policy:` — what clients may do, how often they may fail, and per-session rules. */
import { DEFAULTS, type PolicyConfig, type RuleConfig } from './schema.ts';
import { mapping, type Section } from './section.ts';
import {
  cidr, duration, int, INVALID, listOf, negatableCidr, nullable, oneOf, size, spec, userPattern, verb, verbList,
} from './specs.ts';

const POLICY_KEYS = ['commands', 'auth', 'connections', 'timeouts', 'rateLimitStore', 'trustedNetworks', 'rules'];
const AUTH_KEYS = [
  'maxFailuresPerIp', 'maxFailuresPerUser', 'window', 'lockout', 'failureDelay', 'maxAttemptsPerSession', 'ipv6Prefix',
];
const CONNECTION_KEYS = ['maxPerIp', 'maxTotal', 'ratePerIp', 'rateWindow'];
const TIMEOUT_KEYS = ['idle', 'auth', 'backendReply'];
const RULE_KEYS = ['match', 'deny', 'allow', 'maxMessages', 'maxBytes', 'mode'];

/** `memory`, or a Redis URL with an explicit port and an optional database number. */
export function isRateLimitStore(v: unknown): v is string {
  if (v === 'memory') return true;
  if (typeof v !== 'string') return false;
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    return false; // not a URL at all: the caller reports it
  }
  return (url.protocol === 'redis:' || url.protocol === 'rediss:')
    && url.hostname !== ''
    && url.port !== ''
    && /^(\/\d*)?$/.test(url.pathname)
    && url.search === ''
    && url.hash === '';
}

const rateLimitStore = spec<string>('memory, or a Redis URL like redis://host:port or redis://host:port/db', (v) =>
  isRateLimitStore(v) ? v : INVALID, { type: 'string', pattern: '^(?:memory|rediss?://\\S+)$' });

export function readPolicy(root: Section): PolicyConfig {
  const s = root.sub('policy', POLICY_KEYS);
  const d = DEFAULTS.policy;
  const auth = s.sub('auth', AUTH_KEYS);
  const connections = s.sub('connections', CONNECTION_KEYS);
  const timeouts = s.sub('timeouts', TIMEOUT_KEYS);
  return {
    commands: { allow: s.sub('commands', ['allow']).opt('allow', verbList, [...d.allow]) },
    auth: {
      maxFailuresPerIp: auth.opt('maxFailuresPerIp', int(1), d.maxFailuresPerIp),
      maxFailuresPerUser: auth.opt('maxFailuresPerUser', int(1), d.maxFailuresPerUser),
      window: auth.opt('window', duration(1), d.window),
      lockout: auth.opt('lockout', duration(0), d.lockout),
      failureDelay: auth.opt('failureDelay', duration(0), d.failureDelay),
      maxAttemptsPerSession: auth.opt('maxAttemptsPerSession', int(1), d.maxAttemptsPerSession),
      ipv6Prefix: auth.opt('ipv6Prefix', int(1, 128), d.ipv6Prefix),
    },
    connections: {
      maxPerIp: connections.opt('maxPerIp', int(1), d.maxPerIp),
      maxTotal: connections.opt('maxTotal', int(1), d.maxTotal),
      ratePerIp: connections.opt('ratePerIp', int(0), d.ratePerIp),
      rateWindow: connections.opt('rateWindow', duration(1), d.rateWindow),
    },
    // RFC 1939 asks for an idle timeout of at least 10 minutes; shorter ones are allowed on purpose
    // (tests, and operators who accept the trade-off).
    timeouts: {
      idle: timeouts.opt('idle', duration(1), d.idle),
      auth: timeouts.opt('auth', duration(1), d.auth),
      backendReply: timeouts.opt('backendReply', duration(1), d.backendReply),
    },
    rateLimitStore: s.opt('rateLimitStore', rateLimitStore, 'memory'),
    trustedNetworks: s.opt('trustedNetworks', listOf(cidr), []),
    rules: readRules(s),
  };
}

function readRules(policy: Section): RuleConfig[] {
  return policy.list('rules', rule, 'a list of rules, each with match').filter((r) => r !== null);
}

const MATCH_EXPECTED = 'a mapping with user (a pattern) and/or network (a CIDR, "!" negates)';

const ruleMatch = mapping<RuleConfig['match']>(MATCH_EXPECTED, ['user', 'network'], (m) => {
  const user = m.opt('user', userPattern, null);
  const network = m.opt('network', negatableCidr, null);
  // A rule with neither would match every session: almost certainly a mistake in the YAML.
  if (m.has('user') || m.has('network')) return { user, network };
  m.problems.add(m.path, 'neither user nor network is given', MATCH_EXPECTED);
  return INVALID;
});

const rule = mapping<RuleConfig>('a rule with match', RULE_KEYS, (s) => {
  const match = s.req('match', ruleMatch);
  const rest = {
    deny: s.opt('deny', listOf(verb, { dedupe: true }), []),
    allow: s.opt('allow', nullable(verbList), null),
    maxMessages: s.opt('maxMessages', nullable(int(0)), null),
    maxBytes: s.opt('maxBytes', nullable(size()), null),
    mode: s.opt('mode', oneOf<'enforce' | 'report'>(['enforce', 'report']), 'enforce'),
  };
  return match === undefined ? INVALID : { match, ...rest };
});
