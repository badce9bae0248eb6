/**
 * `node --import tsx bench/micro/log-audit.ts [--sessions N]`: CPU per session of what logging
 * at info and the audit add, without sockets or load, so a change shows through the noise of
 * a shared machine. Each simulated session does what one bench session does (USER, PASS, STAT,
 * QUIT): a session logger made the gateway's way (`sessionLogger`: lines formatted in batches),
 * session-start, USER, login, PASS, STAT, QUIT and session-end log lines; connect, login, STAT,
 * QUIT, logout and disconnect audit records. The log goes to a pipe read by `cat >/dev/null`, the
 * audit to a real file, both through the gateway's own modules (src/log, src/audit), all async.
 * Prints CPU µs per session (user+system, all threads) for: nothing, logging only, audit only, both.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { createRootLogger } from '../../src/log/logger.ts';
import { createAuditSink, type AuditSink } from '../../src/audit/sink.ts';
import { commandRecord, connectRecord, disconnectRecord, loginRecord, logoutRecord } from '../../src/audit/record.ts';
import type { LoggingConfig } from '../../src/config/schema.ts';
import { sessionLogger, type Logger } from '../../src/util/logger.ts';

const { values } = parseArgs({ options: { sessions: { type: 'string' }, rounds: { type: 'string' }, only: { type: 'string' } } });
const N = Number(values.sessions ?? 20000);
const rounds = Number(values.rounds ?? 3);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3gw-micro-'));

// The log's reader: a child that discards, like journald would consume it.
const sink = spawn('sh', ['-c', 'cat >/dev/null'], { stdio: ['pipe', 'ignore', 'inherit'] });
const fd = (sink.stdin as unknown as { _handle: { fd: number } })._handle.fd;

function session(i: number, log: Logger, audit: AuditSink): void {
  const ctx = { session: `s${i.toString(16).padStart(15, '0')}`, listener: 'pop3s', client: '127.0.0.1:40000', tls: 'TLSv1.3' as const };
  const slog = sessionLogger(log, { session: ctx.session, listener: 'pop3s', client: ctx.client });
  audit.write(connectRecord(ctx));
  slog.info({ event: 'session-start', tls: ctx.tls }, 'session start');
  slog.info({ event: 'command', verb: 'USER', result: 'ok', ms: 0 }, 'command');
  const user = { ...ctx, user: 'bob' };
  audit.write(loginRecord(user, 'ok', { mechanism: 'USER' }));
  slog.info({ event: 'login', user: 'bob', mechanism: 'USER', result: 'ok', ms: 3 }, 'login ok');
  slog.info({ event: 'command', verb: 'PASS', result: 'ok', ms: 3 }, 'command');
  slog.info({ event: 'command', verb: 'STAT', result: 'ok', ms: 0 }, 'command');
  audit.write(commandRecord(user, 'STAT', [], 'ok', {}));
  slog.info({ event: 'command', verb: 'QUIT', result: 'ok', ms: 0 }, 'command');
  audit.write(commandRecord(user, 'QUIT', [], 'ok', {}));
  audit.write(logoutRecord(user, [], [], true));
  audit.write(disconnectRecord(user, { bytesIn: 40, bytesOut: 120, durationMs: 9, reason: 'quit' }));
  slog.info({ event: 'session-end', reason: 'quit', user: 'bob', bytesIn: 40, bytesOut: 120, ms: 9 }, 'session end');
}

const nullAudit: AuditSink = { enabled: false, write: () => undefined, reopen: () => undefined, flush: async () => undefined, close: async () => undefined };

async function measure(kind: 'none' | 'log' | 'audit' | 'both'): Promise<number> {
  const dest = pino.destination({ dest: fd, sync: false });
  // The audit's close line can still be on its way when the reader goes at the end: not a result.
  dest.on('error', () => undefined);
  const level = kind === 'log' || kind === 'both' ? 'info' : 'warn';
  const log = createRootLogger(level, dest) as unknown as Logger;
  const cfg = { level, audit: kind === 'audit' || kind === 'both' ? path.join(dir, `audit-${kind}-${Date.now()}.log`) : null,
    auditHeaders: [], auditPseudonymize: false, auditMode: 0o640 } as unknown as LoggingConfig;
  const audit = cfg.audit === null ? nullAudit : await createAuditSink(cfg, { key: null, log });
  const t0 = process.cpuUsage();
  // 20 sessions per macrotask, as events from many sessions share a loop turn under load.
  for (let i = 0; i < N; i += 20) {
    for (let j = i; j < Math.min(N, i + 20); j++) session(j, log, audit);
    await new Promise((r) => setImmediate(r));
  }
  // The last lines' batch waits for its timer (20 ms): let it run, then flush both.
  await new Promise((r) => setTimeout(r, 30));
  await audit.flush();
  await new Promise<void>((r) => dest.flush(() => r()));
  const u = process.cpuUsage(t0);
  await audit.close();
  return (u.user + u.system) / N;
}

const results: Record<string, number[]> = { none: [], log: [], audit: [], both: [] };
for (let r = 0; r < rounds; r++) {
  for (const k of (['none', 'log', 'audit', 'both'] as const).filter((x) => values.only === undefined || values.only === x)) results[k]!.push(await measure(k));
}
for (const [k, v] of Object.entries(results).filter(([, x]) => x.length > 0)) {
  v.sort((a, b) => a - b);
  process.stdout.write(`${k.padEnd(6)} CPU µs per session: median ${v[Math.floor(v.length / 2)]!.toFixed(1)}  (min ${v[0]!.toFixed(1)}, max ${v[v.length - 1]!.toFixed(1)})\n`);
}
sink.stdin!.end();
fs.rmSync(dir, { recursive: true, force: true });
