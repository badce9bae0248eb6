/**
 * Import directions (STYLE.md): a file imports only from its own layer or lower
 * ones, and only the edge touches sockets, TLS, HTTP or pino.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../src');

const LAYER: Record<string, number> = {
  util: 0, protocol: 1, config: 1, policy: 2, session: 2, log: 3, audit: 3, metrics: 3,
  net: 4, backend: 4, relay: 5, admin: 6, app: 7, cluster: 7, cli: 8, 'audit-cli': 8,
};
const IO_MODULES = ['node:net', 'node:tls', 'node:http'];
const IO_ALLOWED = new Set(['net', 'backend', 'relay', 'admin', 'cli', 'app', 'cluster']);
const PINO_ALLOWED = new Set(['log', 'audit', 'app', 'cluster', 'cli', 'audit-cli']);

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []);
}

function layerOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  return rel.length === 1 ? rel[0]!.replace(/\.ts$/, '') : rel[0]!;
}

function imports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'/gm)].map((m) => m[1]!)
    .concat([...text.matchAll(/^\s*import\s+'([^']+)'/gm)].map((m) => m[1]!));
}

describe('architecture', () => {
  const all = files(SRC);

  it('has source files to check', () => {
    expect(all.length).toBeGreaterThan(20);
  });

  it('imports only from its own layer or lower ones', () => {
    const bad: string[] = [];
    for (const f of all) {
      const from = layerOf(f);
      for (const spec of imports(f)) {
        if (!spec.startsWith('.')) continue;
        const to = layerOf(path.resolve(path.dirname(f), spec));
        if ((LAYER[to] ?? 99) > (LAYER[from] ?? 99)) bad.push(`${path.relative(SRC, f)} -> ${spec}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('keeps sockets, TLS and HTTP at the edge', () => {
    const bad: string[] = [];
    for (const f of all) {
      const layer = layerOf(f);
      const allowed = IO_ALLOWED.has(layer) || path.basename(f) === 'tls-material.ts' || path.basename(f) === 'self-signed.ts' || path.basename(f) === 'sni-map.ts' || path.basename(f) === 'cert-pair.ts';
      for (const spec of imports(f)) if (IO_MODULES.includes(spec) && !allowed) bad.push(`${path.relative(SRC, f)} imports ${spec}`);
    }
    expect(bad).toEqual([]);
  });

  it('keeps the protocol layer free of I/O and logging', () => {
    const bad = all.filter((f) => layerOf(f) === 'protocol')
      .flatMap((f) => imports(f).filter((s) => /^(node:(net|tls|stream|http|fs)|pino)$/.test(s)).map((s) => `${path.basename(f)} imports ${s}`));
    expect(bad).toEqual([]);
  });

  it('imports pino only in log, audit and the composition root', () => {
    const bad = all.filter((f) => !PINO_ALLOWED.has(layerOf(f)) && imports(f).includes('pino')).map((f) => path.relative(SRC, f));
    expect(bad).toEqual([]);
  });
});
