/**
 * Reading gateway.yaml: file → YAML document (with line numbers) → validateConfig.
 * Relative paths inside the file resolve against the file's own folder, never the cwd.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isAlias, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { Problem } from './schema.ts';
import type { LineOf, Path } from './problems.ts';
import { validateConfig, type ValidateResult } from './validate.ts';

export async function loadConfigFile(
  file: string,
  env: Record<string, string | undefined> = process.env,
): Promise<ValidateResult> {
  const absolute = resolve(file);
  let source: string;
  try {
    source = await readFile(absolute, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return { ok: false, problems: [{ path: '(file)', message: `cannot read ${absolute} (${reason})`, expected: 'a readable YAML file' }] };
  }
  return parseConfigText(source, { file: absolute, env });
}

/** The part of loading after the read: separated so it can be tested on strings. */
export function parseConfigText(
  source: string,
  opts: { file: string; env: Record<string, string | undefined> },
): ValidateResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(source, { lineCounter });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e): Problem => {
        const line = e.linePos?.[0].line;
        // yaml's pretty message is "what at line N, column M:" plus an excerpt; the line is a field of ours.
        const message = (e.message.split('\n')[0] as string).replace(/ at line \d+, column \d+:?$/, '');
        const base = { path: '(yaml)', message, expected: 'valid YAML' };
        return line === undefined ? base : { ...base, line };
      }),
    };
  }
  let raw: unknown;
  try {
    raw = doc.toJS();
  } catch (err) {
    // toJS throws on alias abuse ("billion laughs") and similar; that is a YAML problem too.
    return { ok: false, problems: [{ path: '(yaml)', message: (err as Error).message, expected: 'valid YAML' }] };
  }
  return validateConfig(raw, {
    baseDir: dirname(opts.file),
    file: opts.file,
    env: opts.env,
    lineOf: lineFinder(doc, lineCounter),
  });
}

/**
 * Finds the line of the node at a config path. For a mapping entry it is the key's line (where
 * an operator reads `window: 15 minutes`), for a list item the item's own line.
 */
export function lineFinder(doc: Document, lineCounter: LineCounter): LineOf {
  return (path: Path) => {
    let node: unknown = doc.contents;
    let offset = isNode(node) ? node.range?.[0] : undefined;
    for (const segment of path) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => keyText(p.key) === String(segment));
        if (pair === undefined) return undefined;
        offset = isNode(pair.key) ? pair.key.range?.[0] : undefined;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === 'number') {
        node = node.items[segment];
        offset = isNode(node) ? node.range?.[0] : undefined;
      } else {
        return undefined;
      }
    }
    return offset === undefined ? undefined : lineCounter.linePos(offset).line;
  };
}

/** `tls.sni["a.example"].cert` → ['tls', 'sni', 'a.example', 'cert'] (the inverse of formatPath). */
function parsePath(text: string): Path {
  const out: (string | number)[] = [];
  for (const m of text.matchAll(/([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g)) {
    out.push(m[1] ?? (m[2] !== undefined ? Number(m[2]) : (JSON.parse(m[3]!) as string)));
  }
  return out;
}

/**
 * Lines for problems found after validation (certificates, runtime checks), which know only
 * their path: the file is parsed again and each path (or its nearest parent) looked up.
 */
export async function locateProblems(file: string, problems: readonly Problem[]): Promise<Problem[]> {
  let source: string;
  try {
    source = await readFile(resolve(file), 'utf8');
  } catch {
    return [...problems]; // it was readable a moment ago; without it the problems stand without lines
  }
  const lineCounter = new LineCounter();
  const lineOf = lineFinder(parseDocument(source, { lineCounter }), lineCounter);
  return problems.map((p) => {
    if (p.line !== undefined) return p;
    const path = parsePath(p.path);
    for (let n = path.length; n > 0; n--) {
      const line = lineOf(path.slice(0, n));
      if (line !== undefined) return { ...p, line };
    }
    return p;
  });
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  return typeof key === 'string' ? key : undefined;
}

/**
 * One line per problem, for `--check` and startup errors:
 * `gateway.yaml:12 policy.auth.window: found "15 minutes"; expected a duration like "250ms", ...`
 */
export function formatProblems(file: string, problems: readonly Problem[]): string {
  return problems
    .map((p) => `${file}${p.line === undefined ? '' : `:${p.line}`} ${p.path}: ${p.message}; expected ${p.expected}`)
    .join('\n');
}
