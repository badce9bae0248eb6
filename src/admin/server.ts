/**
 * The admin endpoint: GET /metrics (Prometheus), GET /healthz, GET /sessions and
 * POST /sessions/:id/kick. Loopback by default. With a token (admin.token or env
 * POP3GW_ADMIN_TOKEN) every route but /healthz needs `Authorization: Bearer <token>`;
 * /healthz then answers anyone, but shows its details only to a caller with the token.
 * Before any of that, request-guard.ts refuses a foreign Host (421), a foreign Origin (403)
 * and a POST that a cross-site HTML form could have sent (415), with or without a token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AdminConfig } from '../config/schema.ts';
import type { Logger } from '../util/logger.ts';
import { RequestGuard } from './request-guard.ts';

export interface SessionView {
  id: string;
  user: string | null;
  client: string;
  listener: string;
  tls: string | false;
  since: string;
  bytesIn: number;
  bytesOut: number;
  lastCommand: string | null;
  state: string;
}

export interface AdminDeps {
  metricsText(): Promise<{ contentType: string; body: string }>;
  /** May answer asynchronously: in cluster mode the primary asks every worker. */
  sessions: { list(): SessionView[] | Promise<SessionView[]>; kick(id: string): boolean | Promise<boolean> };
  health(): Promise<{ ok: boolean; details: Record<string, unknown> }>;
  log: Logger;
}

export interface AdminServer {
  port: number;
  close(): Promise<void>;
}

/** Admin requests are tiny: a slow or stuck client gets cut off quickly. */
const REQUEST_TIMEOUT_MS = 5_000;
const KEEP_ALIVE_MS = 2_000;
/** close() waits this long for in-flight requests before cutting them. */
const CLOSE_GRACE_MS = 1_000;
const KICK = /^\/sessions\/([^/]+)\/kick$/;

type Route = 'metrics' | 'healthz' | 'sessions' | 'kick';

export async function startAdminServer(cfg: AdminConfig, deps: AdminDeps): Promise<AdminServer> {
  if (cfg.port === null) throw new TypeError('admin.port is null: the admin endpoint is disabled');
  const token = cfg.token ?? (process.env.POP3GW_ADMIN_TOKEN || null);
  const tokenDigest = token === null ? null : digest(token);
  const log = deps.log.child({ component: 'admin' });
  const guard = new RequestGuard(cfg.host, cfg.allowedHosts);

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error({ event: 'admin-error', err: (err as Error).message, url: req.url }, 'admin request failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = KEEP_ALIVE_MS;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // No route takes a body: discard whatever comes so the connection can be reused.
    req.resume();
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const method = req.method ?? 'GET';
    const kick = KICK.exec(path);
    const route: Route | null =
      path === '/metrics' ? 'metrics' : path === '/healthz' ? 'healthz' : path === '/sessions' ? 'sessions' : kick ? 'kick' : null;
    const verdict = guard.check(method, req.headers);
    if (!verdict.ok) {
      log.warn({ event: 'admin-refused', status: verdict.status, host: req.headers.host, origin: req.headers.origin, path },
        'admin request refused');
      return sendJson(res, verdict.status, { error: verdict.error });
    }
    if (route === null) return sendJson(res, 404, { error: 'not found' });
    const wanted = route === 'kick' ? 'POST' : 'GET';
    if (method !== wanted && !(wanted === 'GET' && method === 'HEAD')) {
      res.setHeader('Allow', wanted === 'GET' ? 'GET, HEAD' : 'POST');
      return sendJson(res, 405, { error: 'method not allowed' });
    }
    const authorized = tokenDigest === null || bearerMatches(req.headers.authorization, tokenDigest);
    if (route === 'healthz') {
      const h = await deps.health().catch((err: unknown) => ({ ok: false, details: { error: (err as Error).message } }));
      const body = authorized ? { status: h.ok ? 'ok' : 'unavailable', ...h.details } : { status: h.ok ? 'ok' : 'unavailable' };
      return sendJson(res, h.ok ? 200 : 503, body);
    }
    if (!authorized) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="pop3-gateway"');
      return sendJson(res, 401, { error: 'unauthorized' });
    }
    if (route === 'metrics') {
      const m = await deps.metricsText();
      res.writeHead(200, { 'Content-Type': m.contentType, 'Cache-Control': 'no-store' });
      res.end(m.body);
      return;
    }
    if (route === 'sessions') return sendJson(res, 200, await deps.sessions.list());
    const id = decodeId(kick?.[1] ?? '');
    const kicked = id !== null && (await deps.sessions.kick(id));
    log.info({ event: 'admin-kick', session: id, kicked }, kicked ? 'session kicked' : 'kick: no such session');
    return sendJson(res, kicked ? 200 : 404, { kicked });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port ?? 0, cfg.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ event: 'admin-error', err: err.message }, 'admin server error'));
  const port = (server.address() as AddressInfo).port;
  log.debug({ event: 'admin-listening', host: cfg.host, port, auth: tokenDigest !== null }, 'admin endpoint listening');

  let closing: Promise<void> | null = null;
  return {
    port,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Whatever is still in flight after the grace period is cut, so close() always ends.
        setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
      });
      return closing;
    },
  };
}

/** Constant-time check: both sides are hashed first so their lengths always match. */
function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  if (header === undefined) return false;
  const m = /^Bearer +(\S+) *$/i.exec(header);
  return m !== null && timingSafeEqual(digest(m[1] ?? ''), expected);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function decodeId(raw: string): string | null {
  try {
    return decodeURIComponent(raw);
  } catch {
    return null; // malformed %-escape: no session can have that id
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}
