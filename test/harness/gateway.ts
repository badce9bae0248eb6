/**
 * Starts a gateway in the test process on ephemeral loopback ports, in front of
 * a given backend, with logs captured in memory and the audit in a temp file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Gateway } from '../../src/app.ts';
import { createAuditSink } from '../../src/audit/sink.ts';
import { validateConfig } from '../../src/config/validate.ts';
import type { GatewayConfig } from '../../src/config/schema.ts';
import { REDACT_PATHS } from '../../src/log/logger.ts';
import { makeCert } from './certs.ts';
import { captureLogs, type LogCapture } from './log-capture.ts';

export interface TestGateway {
  gw: Gateway;
  config: GatewayConfig;
  /** Ports by listener name: pop3s (implicit), pop3 (starttls), plain (none, loopback). */
  port: Record<string, number>;
  logs: LogCapture;
  auditFile: string;
  dir: string;
  caFile: string;
  fingerprint256: string;
  auditLines(): Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

type Raw = Record<string, unknown>;

function merge(a: Raw, b: Raw): Raw {
  const out: Raw = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v !== null && typeof v === 'object' && !Array.isArray(v) && cur !== null && typeof cur === 'object' && !Array.isArray(cur)
      ? merge(cur as Raw, v as Raw)
      : v;
  }
  return out;
}

export async function startTestGateway(backendPort: number, overrides: Raw = {}, env: Record<string, string> = {}): Promise<TestGateway> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3gw-gw-'));
  const cert = await makeCert({ commonName: 'localhost' });
  const base: Raw = {
    listeners: [
      { name: 'pop3s', host: '127.0.0.1', port: 10995, tls: 'implicit' },
      { name: 'pop3', host: '127.0.0.1', port: 10110, tls: 'starttls' },
      { name: 'plain', host: '127.0.0.1', port: 10111, tls: 'none' },
    ],
    tls: { cert: cert.certFile, key: cert.keyFile },
    backend: { host: '127.0.0.1', port: backendPort },
    policy: { auth: { failureDelay: '50ms' } },
    logging: { level: 'debug', audit: path.join(dir, 'audit.log') },
    admin: { host: '127.0.0.1', port: 19110 },
    shutdownGrace: '2s',
  };
  const raw = merge(base, overrides);
  const result = validateConfig(raw, { baseDir: dir, file: null, env });
  if (!result.ok) throw new Error(`test config invalid: ${JSON.stringify(result.problems, null, 1)}`);
  const logs = captureLogs();
  const logger = pino({ level: 'trace', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, logs.stream);
  // A synchronous audit sink: a record is in the file before the client sees the reply,
  // so tests can read the audit right after a command without polling.
  const auditSink = await createAuditSink(result.config.logging, { key: env.POP3GW_AUDIT_KEY ?? null, log: logger, sync: true });
  const gw = await Gateway.start(result.config, { logger, env, ephemeralPorts: true, auditSink });
  const port: Record<string, number> = {};
  for (const [name, a] of Object.entries(gw.addresses())) port[name] = a.port;
  if (gw.adminPort !== null) port.admin = gw.adminPort;
  const auditFile = path.join(dir, 'audit.log');
  return {
    gw, config: result.config, port, logs, auditFile, dir, caFile: cert.caFile, fingerprint256: cert.fingerprint256,
    auditLines: () => (fs.existsSync(auditFile) ? fs.readFileSync(auditFile, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) : []),
    stop: async () => {
      await gw.stop(500);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
