/**
 * `npm run audit -- [filters] [--json | --verify]`: query or verify the audit log, including its
 * rotated files (audit.log.2.gz, audit.log.1, audit.log — read oldest first).
 * Exit codes: 0 done, 1 the chain is broken (--verify), 2 bad arguments or unreadable input.
 * Sets process.exitCode instead of calling process.exit so piped output is never cut short.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { loadConfigFile } from './config/load.ts';
import { parseCidr } from './util/cidr.ts';
import { verifyStep, type ChainHead, type ChainProblem } from './audit/chain.ts';
import { listAuditFiles, readLines } from './audit/files.ts';
import { pseudonymizer, isPseudonym } from './audit/pseudonymize.ts';
import { compileFilter, formatTable, parseRecordLine, parseSince, type AuditRecord, type RecordFilter } from './audit/query.ts';

const USAGE = `usage: npm run audit -- [options]

Filters (all optional, combined with AND):
  --user NAME        records of this user (with pseudonymized audits, set POP3GW_AUDIT_KEY)
  --ip ADDR|CIDR     records from this client address or range
  --event LIST       connect,login,command,policy,logout,disconnect,signal (comma-separated)
  --uid UID          records about this message (UIDL unique-id)
  --since WHEN       "24h", "90m", "7d", "2w" ago, or an ISO date (2024-05-01, 2024-05-01T12:00Z)
  --until WHEN       same forms, exclusive

Output:
  (default)          a table
  --json             matching records as JSON lines
  --verify           check the hash chain across all files; exit 1 at the first broken record

Input:
  --file PATH        the audit file (default: logging.audit from the config)
  --config FILE      gateway config to read logging.audit from (default ./gateway.yaml)
  -h, --help         this text
`;

const EVENTS = new Set(['connect', 'login', 'command', 'policy', 'logout', 'disconnect', 'signal']);

/** Bad arguments: the message and the usage text, exit 2. */
class UsageError extends Error {}
/** Arguments fine, input missing or unusable: just the message, exit 2. */
class InputError extends Error {}

async function main(argv: readonly string[]): Promise<number> {
  let values: ReturnType<typeof parse>;
  try {
    values = parse(argv);
  } catch (err) {
    return usage((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    const source = await auditSource(values.file, values.config);
    const files = await listAuditFiles(source.file);
    if (files.length === 0) throw new InputError(`no audit file at ${source.file}`);
    if (values.verify) return await verify(files);
    return await query(files, buildFilter(values, source.pseudonymized), values.json === true);
  } catch (err) {
    if (err instanceof UsageError) return usage(err.message);
    process.stderr.write(`audit: ${(err as Error).message}\n`);
    return 2;
  }
}

function parse(argv: readonly string[]) {
  const { values, positionals } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    options: {
      user: { type: 'string' },
      ip: { type: 'string' },
      event: { type: 'string' },
      uid: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      file: { type: 'string' },
      config: { type: 'string' },
      json: { type: 'boolean' },
      verify: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument: ${positionals[0]}`);
  if (values.json && values.verify) throw new UsageError('--json and --verify do not go together');
  return values;
}

function usage(problem: string): number {
  process.stderr.write(`audit: ${problem}\n\n${USAGE}`);
  return 2;
}

function buildFilter(v: ReturnType<typeof parse>, pseudonymized: boolean): RecordFilter {
  const f: RecordFilter = {};
  if (v.user !== undefined) {
    f.user = v.user;
    const key = process.env.POP3GW_AUDIT_KEY || null;
    if (key !== null) f.pseudonymize = pseudonymizer(key);
    else if (pseudonymized && !isPseudonym(v.user)) {
      throw new InputError('this audit writes user names as keyed hashes: set POP3GW_AUDIT_KEY to search by name');
    }
  }
  if (v.ip !== undefined) {
    if (parseCidr(v.ip) === null) throw new UsageError(`--ip: not an address or CIDR range: ${v.ip}`);
    f.ip = v.ip;
  }
  if (v.uid !== undefined) f.uid = v.uid;
  if (v.event !== undefined) {
    const events = v.event.split(',').map((e) => e.trim()).filter((e) => e !== '');
    const unknown = events.find((e) => !EVENTS.has(e));
    if (unknown !== undefined || events.length === 0) throw new UsageError(`unknown event: ${unknown ?? v.event}`);
    f.event = events;
  }
  for (const key of ['since', 'until'] as const) {
    const text = v[key];
    if (text === undefined) continue;
    const t = parseSince(text);
    if (t === null) throw new UsageError(`--${key}: not a duration ("24h") or ISO date: ${text}`);
    f[key] = t;
  }
  return f;
}

/** The audit path: --file, or logging.audit of the config (resolved against the config's folder). */
async function auditSource(file: string | undefined, config: string | undefined): Promise<{ file: string; pseudonymized: boolean }> {
  const configFile = resolve(config ?? 'gateway.yaml');
  if (file !== undefined) {
    // Pseudonymization is only known from a config; without one, POP3GW_AUDIT_KEY alone decides.
    const logging = config === undefined ? null : await readLogging(configFile);
    return { file: resolve(file), pseudonymized: logging?.auditPseudonymize ?? false };
  }
  const logging = await readLogging(configFile);
  if (logging.audit === null) throw new InputError(`${configFile} sets no logging.audit; pass --file`);
  return { file: logging.audit, pseudonymized: logging.auditPseudonymize };
}

/**
 * The full loader first; when the config has problems unrelated to the audit (a query must still
 * work on a half-edited config, or without POP3GW_AUDIT_KEY), just logging.audit is read.
 */
async function readLogging(configFile: string): Promise<{ audit: string | null; auditPseudonymize: boolean }> {
  const loaded = await loadConfigFile(configFile);
  if (loaded.ok) return loaded.config.logging;
  let raw: unknown;
  try {
    raw = parseYaml(await readFile(configFile, 'utf8'));
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message.split('\n')[0];
    throw new InputError(`cannot read config ${configFile} (${why}); pass --file or --config`);
  }
  const logging = (raw as { logging?: { audit?: unknown; auditPseudonymize?: unknown } } | null)?.logging;
  const audit = typeof logging?.audit === 'string' ? resolve(dirname(configFile), logging.audit) : null;
  return { audit, auditPseudonymize: logging?.auditPseudonymize === true };
}

async function query(files: readonly string[], filter: RecordFilter, json: boolean): Promise<number> {
  const keep = compileFilter(filter);
  const matched: AuditRecord[] = [];
  let count = 0;
  for (const file of files) {
    for await (const line of readLines(file)) {
      const rec = parseRecordLine(line);
      if (rec === null || !keep(rec)) continue;
      count++;
      if (json) await write(`${line}\n`);
      else matched.push(rec);
    }
  }
  if (count === 0) {
    process.stderr.write('no matching records\n');
    return 0;
  }
  if (!json) await write(formatTable(matched));
  process.stderr.write(`${count} record${count === 1 ? '' : 's'}\n`);
  return 0;
}

const EXPLAIN: Record<ChainProblem, string> = {
  'hash-mismatch': 'record was altered (its hash does not match its content)',
  'broken-link': 'record does not follow the one before it (prev hash differs)',
  'seq-gap': 'records are missing or out of order before this line',
  'bad-json': 'line is not a chained audit record',
};

/** Files oldest first: each continues the previous file's head, so a missing rotation shows too. */
async function verify(files: readonly string[]): Promise<number> {
  let head: ChainHead | null = null;
  let first: number | null = null;
  let count = 0;
  for (const file of files) {
    let lineNo = 0;
    for await (const line of readLines(file)) {
      lineNo++;
      const step = verifyStep(line, head);
      if (step === 'blank') continue;
      if (!step.ok) {
        const { problem, seq, expectedSeq } = step.failure;
        const where = `${file}:${lineNo}${seq === null ? '' : ` (seq ${seq})`}`;
        const expected = expectedSeq === null ? '' : `; expected seq ${expectedSeq}`;
        process.stdout.write(`FAILED at ${where}: ${problem}: ${EXPLAIN[problem]}${expected}\n`);
        process.stdout.write(`${count} records verified before it\n`);
        return 1;
      }
      first ??= step.head.seq;
      head = step.head;
      count++;
    }
  }
  const range = head === null ? '' : ` (seq ${first}–${head.seq})`;
  await write(`ok: ${count} records verified${range} in ${files.length} file${files.length === 1 ? '' : 's'}\n`);
  return 0;
}

/** Writes with backpressure, so a large --json result does not pile up in memory. */
function write(text: string): Promise<void> {
  return new Promise((res) => {
    if (process.stdout.write(text)) res();
    else process.stdout.once('drain', res);
  });
}

// `npm run audit -- ... | head`: a closed pipe ends the output, not with a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exitCode = 0;
  else process.stderr.write(`audit: ${err.message}\n`);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`audit: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 2;
  },
);
