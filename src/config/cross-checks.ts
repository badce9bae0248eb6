/**
 * Rules that span several keys, run after every section has been read on its own.
 * Each reports at the key an operator would change.
 */
import { parseIp } from '../util/cidr.ts';
import type { AdminConfig, PolicyConfig } from './schema.ts';
import type { ListenerDraft } from './validate-listeners.ts';
import type { Path, Problems } from './problems.ts';

/** An address something binds to, with where it was configured. */
interface Binding {
  readonly host: string;
  readonly port: number;
  readonly path: Path;
  readonly label: string;
}

/** `listeners` is aligned with the YAML list; keys that were invalid are undefined and skipped. */
export function checkListeners(
  problems: Problems,
  listeners: readonly (ListenerDraft | null)[],
  admin: AdminConfig,
  policy: PolicyConfig,
): void {
  const seenNames = new Map<string, number>();
  const bindings: Binding[] = [];
  listeners.forEach((l, i) => {
    if (l === null) return;
    if (l.name !== undefined) {
      const earlier = seenNames.get(l.name);
      if (earlier !== undefined) {
        problems.add(['listeners', i, 'name'], `"${l.name}" is also the name of listeners[${earlier}]`, 'a name no other listener has');
      } else {
        seenNames.set(l.name, i);
      }
    }
    if (l.host !== undefined && l.port !== undefined) {
      bindings.push({ host: l.host, port: l.port, path: ['listeners', i, 'port'], label: `listeners[${i}]` });
    }
    checkStlsReachable(problems, l, i, policy);
  });
  if (admin.port !== null) bindings.push({ host: admin.host, port: admin.port, path: ['admin', 'port'], label: 'admin' });
  checkBindings(problems, bindings);
}

// requireTls on a starttls listener means "STLS first": if STLS itself is refused, nobody logs in.
function checkStlsReachable(problems: Problems, l: ListenerDraft, i: number, policy: PolicyConfig): void {
  if (l.tls !== 'starttls' || !l.requireTls) return;
  const allow = l.allow ?? policy.commands.allow;
  if (allow.includes('STLS')) return;
  problems.add(
    l.allow === null ? ['policy', 'commands', 'allow'] : ['listeners', i, 'commands', 'allow'],
    `STLS is not allowed, so starttls listener listeners[${i}] (requireTls) can never authenticate`,
    'STLS in the allowlist, or requireTls: false',
  );
}

function checkBindings(problems: Problems, bindings: readonly Binding[]): void {
  bindings.forEach((b, j) => {
    // Port 0 lets the OS choose a free port, so those never collide.
    if (b.port === 0) return;
    const clash = bindings.slice(0, j).find((a) => a.port === b.port && hostsOverlap(a.host, b.host));
    if (clash !== undefined) {
      problems.add(b.path, `${b.host}:${b.port} is also used by ${clash.label}`, 'a host:port nothing else listens on');
    }
  });
}

/**
 * Whether two bind addresses would collide on the same port. "::" (dual-stack in Node) takes
 * every address, "0.0.0.0" every IPv4 one; a host name may resolve to anything, so it only
 * surely collides with an identical name or a wildcard.
 */
export function hostsOverlap(a: string, b: string): boolean {
  const ipA = parseIp(a);
  const ipB = parseIp(b);
  const wildcard = (ip: typeof ipA, kind: 'ipv4' | 'ipv6') =>
    ip !== null && ip.kind() === kind && ip.range() === 'unspecified';
  if (wildcard(ipA, 'ipv6') || wildcard(ipB, 'ipv6')) return true;
  if (ipA === null || ipB === null) {
    if (ipA === null && ipB === null) return a.toLowerCase() === b.toLowerCase();
    return wildcard(ipA, 'ipv4') || wildcard(ipB, 'ipv4');
  }
  if (ipA.kind() !== ipB.kind()) return false;
  return wildcard(ipA, 'ipv4') || wildcard(ipB, 'ipv4') || ipA.toNormalizedString() === ipB.toNormalizedString();
}
