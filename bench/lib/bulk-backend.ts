/**
 * The backend the cost-hunting tools measure against: a real Dovecot with one big message for
 * alice (bulk relay) and one small one for bob (sessions), and a test certificate for the
 * proxies in front of it. `onDovecot` runs as soon as Dovecot is up, so the caller's run scope
 * can stop it whatever happens next.
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeCert, type CertFiles } from '../../test/harness/certs.ts';
import { freePort } from '../../test/harness/ports.ts';
import { startDovecot, type DovecotInstance } from '../../test/harness/dovecot.ts';
import { startGatewayProcess } from './gateway-process.ts';
import { bulkMessage } from './mailbox.ts';
import type { Target } from './measure.ts';
import { startPipeProxy } from './pipe-proxy.ts';
import type { RunScope } from './run-scope.ts';

export interface BulkBackend {
  readonly dovecot: DovecotInstance;
  readonly cert: CertFiles;
  /** How a client reaches an implicit-TLS proxy on `port` that presents `cert`. */
  endpoint(port: number): { host: string; port: number; tls: 'implicit'; ca: string; servername: string };
}

export async function startBulkBackend(mib: number, onDovecot: (dc: DovecotInstance) => void): Promise<BulkBackend> {
  const dovecot = await startDovecot();
  onDovecot(dovecot);
  dovecot.addMessage('alice', bulkMessage(mib * 1024 * 1024, 'big'));
  dovecot.addMessage('bob', 'Subject: hi\r\n\r\nHello.\r\n');
  const cert = await makeCert({ commonName: 'localhost' });
  return {
    dovecot,
    cert,
    endpoint: (port) => ({ host: '127.0.0.1', port, tls: 'implicit', ca: cert.caPem, servername: 'localhost' }),
  };
}

export interface StartedProxy {
  readonly target: Target;
  /** The inspector's ws:// URL when started with `inspect`, else null. */
  readonly inspectorUrl: string | null;
  stop(): Promise<void>;
}

export interface ProxyOptions {
  dir: string;
  nodeArgs: string[];
  level: 'warn' | 'info';
  audit: boolean;
  live: RunScope['live'];
  /** Start with the inspector on a loopback port (for a profile taken after a warm-up). */
  inspect?: boolean;
  /** The gateway's stdout (its JSON log) to a file rather than a pipe read by this process. */
  logToFile?: boolean;
}

/**
 * The Node TLS pipe or the compiled gateway (level, audit) in front of the backend's Dovecot,
 * started with extra node flags (a profiler), as a measurement Target. A gateway is put in
 * `live` so the run scope stops it if the run fails.
 */
export async function startProxy(kind: 'pipe' | 'gateway', b: BulkBackend, o: ProxyOptions): Promise<StartedProxy> {
  const { dovecot: dc, cert } = b;
  if (kind === 'pipe') {
    // The pipe prints no inspector URL of its own: a free port chosen here, asked over HTTP.
    const port = o.inspect === true ? await freePort() : null;
    const p = await startPipeProxy(cert.certFile, cert.keyFile, dc.port, port === null ? o.nodeArgs : [...o.nodeArgs, `--inspect=127.0.0.1:${port}`]);
    const inspectorUrl = port === null ? null
      : ((await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>)[0]!.webSocketDebuggerUrl;
    return { target: { name: kind, endpoint: b.endpoint(p.port), gatewayPid: p.pid, dovecotPid: dc.pid }, inspectorUrl, stop: p.stop };
  }
  const gw = await startGatewayProcess({ dir: fs.mkdtempSync(path.join(o.dir, 'gw-')), backendPort: dc.port,
    certFile: cert.certFile, keyFile: cert.keyFile, level: o.level, audit: o.audit, nodeArgs: o.nodeArgs,
    inspect: o.inspect, logToFile: o.logToFile });
  o.live.gateway = gw;
  return {
    target: { name: kind, endpoint: b.endpoint(gw.ports.pop3s), gatewayPid: gw.pid, dovecotPid: dc.pid },
    inspectorUrl: gw.inspectorUrl,
    stop: async () => {
      await gw.stop();
      o.live.gateway = null;
    },
  };
}
