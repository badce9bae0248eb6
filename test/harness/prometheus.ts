import { request } from 'node:http';

/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for tests that
 * scrape a live /metrics: throws on the first line a Prometheus server would reject,
 * so a test that reads a value has also checked the whole page. Plus a tiny HTTP
 * client for the admin endpoint.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  help: Map<string, string>;
  type: Map<string, string>;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)/y;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export function parseExposition(text: string): Exposition {
  const out: Exposition = { help: new Map(), type: new Map(), samples: [] };
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const seen = new Set<string>();
  text.slice(0, -1).split('\n').forEach((line, i) => {
    const fail = (why: string): never => {
      throw new Error(`line ${i + 1}: ${why}: ${JSON.stringify(line)}`);
    };
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!m) {
        if (!line.startsWith('# ')) fail('bad comment');
        return;
      }
      const kind = m[1] as 'HELP' | 'TYPE';
      const name = m[2]!;
      const rest = m[3]!;
      if (!NAME.test(name)) fail('bad metric name');
      const map = kind === 'HELP' ? out.help : out.type;
      if (map.has(name)) fail(`second ${kind}`);
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) fail('unknown type');
        if (out.samples.some((s) => family(s.name, out.type) === name)) fail('TYPE after samples');
      }
      map.set(name, rest);
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) return fail('bad sample');
    const labels: Record<string, string> = {};
    const body = m[3] ?? '';
    LABEL.lastIndex = 0;
    while (LABEL.lastIndex < body.length) {
      const l = LABEL.exec(body);
      if (!l) return fail('bad labels');
      if (l[1]! in labels) fail('duplicate label');
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      if (l[3] === '') break;
    }
    // Values are read as Go's ParseFloat does: "NaN" in any case, ±Inf.
    const raw = m[4]!;
    const nan = /^nan$/i.test(raw);
    const inf = /^([+-]?)inf(?:inity)?$/i.exec(raw);
    const value = nan ? NaN : inf ? (inf[1] === '-' ? -Infinity : Infinity) : /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(raw) ? Number(raw) : NaN;
    if (!nan && Number.isNaN(value)) fail('bad value');
    const fam = family(m[1]!, out.type);
    if (fam === null) fail('sample without TYPE');
    const key = `${m[1]}{${Object.entries(labels).sort().map(([k, v]) => `${k}=${v}`).join(',')}}`;
    if (seen.has(key)) fail('duplicate series');
    seen.add(key);
    out.samples.push({ name: m[1]!, labels, value });
  });
  return out;
}

/** The declared family a sample belongs to (histograms add _bucket/_sum/_count). */
function family(name: string, types: Map<string, string>): string | null {
  if (types.has(name)) return name;
  for (const suffix of ['_bucket', '_sum', '_count', '_total', '_created']) {
    if (name.endsWith(suffix) && types.has(name.slice(0, -suffix.length))) return name.slice(0, -suffix.length);
  }
  return null;
}

/** The value of the series `name` whose labels include `labels`; 0 when no series matches (counters not yet moved). */
export function metric(e: Exposition, name: string, labels: Record<string, string> = {}): number {
  const hits = e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hits.reduce((sum, s) => sum + s.value, 0);
}

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function http(port: number, method: string, path: string, token: string | null = null): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
    // The admin endpoint refuses a POST a cross-site HTML form could send: scripts say JSON.
    if (method === 'POST') headers['content-type'] = 'application/json';
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** GET /metrics with the token, parsed strictly. */
export async function scrape(port: number, token: string | null = null): Promise<Exposition> {
  const r = await http(port, 'GET', '/metrics', token);
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.body}`);
  if (!String(r.headers['content-type']).startsWith('text/plain; version=0.0.4')) {
    throw new Error(`/metrics content type ${String(r.headers['content-type'])}`);
  }
  return parseExposition(r.body);
}
