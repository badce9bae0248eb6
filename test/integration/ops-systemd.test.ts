/**
 * docs/systemd/pop3-gateway.service checked by the real systemd-analyze (Debian `systemd`):
 * `verify` on a copy whose node path is this machine's (verify needs the binary to exist),
 * with no warning at all; the offline `security` score; that it runs the compiled CLI the
 * package ships; and that the README links the file instead of keeping a copy that drifts.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTempDir } from '../harness/child-processes.ts';
import { gatewayNodeFlags } from '../harness/node-flags.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const UNIT = path.join(ROOT, 'docs/systemd/pop3-gateway.service');
const text = fs.readFileSync(UNIT, 'utf8');

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(cmd, args, { timeout: 60_000, env: { ...process.env, SYSTEMD_LOG_COLOR: '0', SYSTEMD_PAGER: '' } }, (err, stdout, stderr) =>
      done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** `Key=value` lines of the unit (comments out), every value of a repeated key kept. */
function directives(unit: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

describe('the shipped systemd unit', () => {
  const dir = makeTempDir('opssystemd');
  const node = process.execPath;
  const unit = directives(text);
  /** The unit as this machine would install it: node where it really is. */
  const copy = (body: string): string => {
    const file = path.join(dir, 'pop3-gateway.service');
    fs.writeFileSync(file, body.replaceAll('/usr/bin/node ', `${node} `));
    return file;
  };

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('passes systemd-analyze verify without a single warning', async () => {
    const r = await run('systemd-analyze', ['verify', copy(text)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('makes systemd-analyze verify complain when a directive is misspelt or the binary is missing (the check has teeth)', async () => {
    const typo = await run('systemd-analyze', ['verify', copy(text.replace('ProtectHome=', 'ProtectHomes='))]);
    expect(typo.stderr).toContain("Unknown key 'ProtectHomes'");
    const missing = await run('systemd-analyze', ['verify', copy(text.replaceAll('/usr/bin/node ', '/nonexistent/node '))]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/nonexistent\/node/);
  });

  it('runs the compiled CLI that package.json ships as its bin, with the config in /etc', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> };
    const cli = pkg.bin['pop3-gateway'];
    expect(cli).toBe('dist/src/cli.js');
    // The bin's node flags (GC on the main thread, a young generation that keeps its size, no idle-time
    // collections; README Benchmark).
    const flags = gatewayNodeFlags().join(' ');
    expect(flags).toContain('--single-threaded-gc');
    expect(flags).toContain('--min-semi-space-size=8');
    expect(flags).toContain('--no-memory-reducer');
    expect(unit.get('ExecStart')).toEqual([`/usr/bin/node ${flags} /opt/pop3-gateway/${cli} --config /etc/pop3-gateway/gateway.yaml`]);
    // `npm start` runs what the unit runs.
    expect(pkg.scripts.start).toBe(`node ${flags} ${cli}`);
    expect(unit.get('ExecStartPre')).toEqual([`/usr/bin/node /opt/pop3-gateway/${cli} --config /etc/pop3-gateway/gateway.yaml --check`]);
    expect(unit.get('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
  });

  it('carries the hardening options, and says why MemoryDenyWriteExecute is left out', () => {
    const want: Record<string, string> = {
      NoNewPrivileges: 'true', ProtectSystem: 'strict', ProtectHome: 'true', PrivateTmp: 'true',
      AmbientCapabilities: 'CAP_NET_BIND_SERVICE', CapabilityBoundingSet: 'CAP_NET_BIND_SERVICE',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX', ProtectKernelTunables: 'true',
      ProtectKernelModules: 'true', ProtectKernelLogs: 'true', ProtectControlGroups: 'true', LockPersonality: 'true',
    };
    for (const [k, v] of Object.entries(want)) expect(unit.get(k), k).toEqual([v]);
    expect(unit.get('SystemCallFilter')?.[0]).toBe('@system-service');
    expect(unit.has('MemoryDenyWriteExecute')).toBe(false);
    expect(text).toMatch(/MemoryDenyWriteExecute.*incompatible with V8's JIT/);
    // The audit directory the logrotate stanza rotates must stay writable under ProtectSystem=strict.
    const rotate = fs.readFileSync(path.join(ROOT, 'docs/logrotate/pop3-gateway'), 'utf8');
    const auditDir = path.dirname(/^(\/\S+)\s*\{/m.exec(rotate)![1]!);
    expect(unit.get('ReadWritePaths')?.join(' ').split(/\s+/)).toContain(auditDir);
  });

  it('scores as well exposed as "OK" (at most 2.0) in systemd-analyze security', async () => {
    const r = await run('systemd-analyze', ['security', '--offline=true', copy(text)]);
    const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(2.0);
  });

  it('is what the README links in Deployment, with no inline copy left to drift', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain('](docs/systemd/pop3-gateway.service)');
    expect(readme).not.toMatch(/^\[Service\]$/m);
  });
});
