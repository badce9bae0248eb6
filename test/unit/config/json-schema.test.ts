import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { gatewaySchema, renderGatewaySchema, SCHEMA_FILE } from '../../../src/config/document-schema.ts';
import { constrains, type JsonSchema } from '../../../src/config/json-schema.ts';
import { parseConfigText } from '../../../src/config/load.ts';
import { mapping } from '../../../src/config/section.ts';
import {
  bindPort, bool, cidr, duration, host, INVALID, int, listOf, negatableCidr, nullable, oneOf, port, size, text,
  userPattern, verb, verbList, type Spec,
} from '../../../src/config/specs.ts';
import { Problems } from '../../../src/config/problems.ts';
import { minimal } from './helpers.ts';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const fixtures = join(repo, 'test/fixtures/config');

// Strict, as editors are not: an unknown keyword or a malformed pattern fails the compile.
// (strictRequired is off: the backend's oneOf names keys its parent defines, which is standard.)
const ajv = new Ajv({ allErrors: true, allowUnionTypes: true, strict: true, strictRequired: false });
const check = ajv.compile(gatewaySchema());

function schemaAccepts(raw: unknown): boolean {
  return check(raw) as boolean;
}

function validatorAccepts(yamlText: string): boolean {
  return parseConfigText(yamlText, { file: join(fixtures, 'x.yaml'), env: { POP3GW_AUDIT_KEY: 'k' } }).ok;
}

/** Every property schema at any depth, with its YAML-like path (`admin.token`, `routes[].match`). */
function properties(schema: unknown, path = ''): [string, JsonSchema][] {
  if (Array.isArray(schema)) return schema.flatMap((s) => properties(s, path));
  if (typeof schema !== 'object' || schema === null) return [];
  const s = schema as Record<string, unknown>;
  const out: [string, JsonSchema][] = [];
  for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, JsonSchema>)) {
    const at = path === '' ? k : `${path}.${k}`;
    out.push([at, v], ...properties(v, at));
  }
  for (const [k, v] of Object.entries(s)) {
    if (k === 'items') out.push(...properties(v, `${path}[]`));
    else if (k === 'additionalProperties') out.push(...properties(v, `${path}.*`));
    else if (k === 'anyOf' || k === 'oneOf') out.push(...properties(v, path));
  }
  return out;
}

describe('the shipped JSON Schema', () => {
  it('is exactly what npm run schema generates from the validator (no drift)', () => {
    const committed = readFileSync(join(repo, SCHEMA_FILE), 'utf8');
    expect(committed, 'docs/gateway.schema.json is stale: run npm run schema').toBe(renderGatewaySchema());
  });

  it('gives every key of every section a typed schema and a description', () => {
    const all = properties(gatewaySchema());
    expect(all.length).toBeGreaterThan(80);
    expect(all.map(([p]) => p)).toEqual(expect.arrayContaining(['admin.token', 'routes[].backend.servers[].host', 'tls.sni.*.cert']));
    const untyped = all.filter(([, s]) => !constrains(s)).map(([p]) => p);
    expect(untyped, 'keys listed in a section but never read through a spec').toEqual([]);
    expect(all.filter(([, s]) => typeof s.description !== 'string' && !('properties' in s)).map(([p]) => p)).toEqual([]);
  });

  it('lists the keys the validator knows, and rejects unknown ones', () => {
    const schema = gatewaySchema() as { properties: Record<string, any>; additionalProperties: unknown; required: string[] };
    expect(Object.keys(schema.properties)).toEqual([
      'listeners', 'tls', 'backend', 'routes', 'workers', 'policy', 'limits', 'capa', 'logging', 'admin', 'shutdownGrace',
    ]);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(['listeners', 'backend']);
    expect(schema.properties.logging.properties.format.enum).toEqual(['auto', 'pretty', 'json']);
    expect(schema.properties.backend.oneOf).toEqual([{ required: ['host', 'port'] }, { required: ['servers'] }]);
  });

  it('is a schema a real validator (ajv, strict) compiles', () => {
    expect(ajv.validateSchema(gatewaySchema())).toBe(true);
  });
});

describe('configs against the schema (ajv)', () => {
  it('accepts the shipped gateway.yaml, whose first line points editors at the schema', () => {
    const text = readFileSync(join(repo, 'gateway.yaml'), 'utf8');
    expect(text.split('\n')[0]).toBe(`# yaml-language-server: $schema=./${SCHEMA_FILE}`);
    expect(validatorAccepts(text)).toBe(true);
    expect(schemaAccepts(parse(text)), ajv.errorsText(check.errors)).toBe(true);
  });

  it('accepts every fixture under test/fixtures/config that the validator accepts', () => {
    const files = readdirSync(fixtures).filter((f) => f.endsWith('.yaml'));
    const accepted = files.filter((f) => validatorAccepts(readFileSync(join(fixtures, f), 'utf8')));
    expect(accepted).toContain('full.yaml');
    for (const f of accepted) {
      expect(schemaAccepts(parse(readFileSync(join(fixtures, f), 'utf8'))), `${f}: ${ajv.errorsText(check.errors)}`).toBe(true);
    }
  });

  it('rejects the fixture full of mistakes (unknown key, out-of-range port, bad enum, bad duration)', () => {
    const text = readFileSync(join(fixtures, 'many-mistakes.yaml'), 'utf8');
    expect(validatorAccepts(text)).toBe(false);
    expect(schemaAccepts(parse(text))).toBe(false);
    const where = new Set((check.errors ?? []).map((e) => e.instancePath));
    expect([...where]).toEqual(expect.arrayContaining(['/listeners/0/port', '/listeners/1/tls', '/backend', '/policy/auth/window', '/workers']));
  });

  it('accepts the smallest config, a pool of servers and empty sections', () => {
    expect(schemaAccepts(minimal())).toBe(true);
    expect(schemaAccepts({ ...minimal(), backend: { servers: [{ host: 'a', port: 1 }] } })).toBe(true);
    expect(schemaAccepts({ ...minimal(), policy: null, logging: null, routes: null })).toBe(true);
  });

  const shapeMistakes: [string, (raw: Record<string, any>) => void][] = [
    ['an unknown top-level key', (r) => { r.listners = []; }],
    ['an unknown key in a section', (r) => { r.policy = { auth: { windw: '1m' } }; }],
    ['an unknown key in a list item', (r) => { r.listeners[0].prot = 1; }],
    ['a string where a port goes', (r) => { r.listeners[0].port = 'pop3'; }],
    ['a number where a duration goes', (r) => { r.policy = { timeouts: { idle: 600 } }; }],
    ['a duration without a unit word', (r) => { r.shutdownGrace = '15 minutes'; }],
    ['a size in an unknown unit', (r) => { r.limits = { maxMultiline: '10 parsecs' }; }],
    ['a value outside an enum', (r) => { r.logging = { format: 'colour' }; }],
    ['a list where a mapping goes', (r) => { r.tls = ['a']; }],
    ['a missing required key', (r) => { delete r.backend; }],
    ['a backend with neither host/port nor servers', (r) => { r.backend = { tls: 'none' }; }],
    ['a mapping where a list goes', (r) => { r.routes = { match: 'x' }; }],
    ['an unknown verb', (r) => { r.policy = { commands: { allow: ['XYZZY'] } }; }],
  ];

  it.each(shapeMistakes)('rejects %s, as the validator does', (_name, edit) => {
    const raw = minimal();
    edit(raw);
    expect(validatorAccepts(JSON.stringify(raw))).toBe(false);
    expect(schemaAccepts(raw)).toBe(false);
  });
});

describe('spec fragments', () => {
  // The schema may be looser than the validator (an editor hint), never stricter.
  const cases: [string, Spec<unknown>, unknown[]][] = [
    ['text', text, ['x', ' a b ', 'ünïcode']],
    ['bool', bool, [true, false]],
    ['int', int(1, 10), [1, 10]],
    ['port', port, [1, 65535]],
    ['bindPort', bindPort, [0, 995]],
    ['duration(0)', duration(0), [0, '0ms', '250ms', '1h30m', '1d']],
    ['duration(1)', duration(1), ['1s', '15m']],
    ['size(64)', size(64), [64, '64B', '64KiB', '10 MiB', '1GB', '512']],
    ['oneOf', oneOf(['a', 'b']), ['a', 'b']],
    ['nullable', nullable(port), [null, 110]],
    ['listOf', listOf(port), [null, [], [1, 2]]],
    ['verbList', verbList, [['user', 'Pass', 'QUIT']]],
    ['verb', verb, ['stls', 'STLS']],
    ['cidr', cidr, ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7', '::1']],
    ['negatableCidr', negatableCidr, ['!10.0.0.0/8', '::/0']],
    ['userPattern', userPattern, ['alice', '*@example.org', '/^a.*@x\\.org$/i']],
    ['host', host, ['mail.example.org', '::1', 'fe80::1%eth0']],
  ];

  it.each(cases)('%s: every value the validator accepts, the schema accepts', (_name, spec, values) => {
    const compiled = ajv.compile(spec.schema);
    for (const v of values) {
      expect(spec.check(v, ['k'], new Problems(undefined)), JSON.stringify(v)).not.toBe(INVALID);
      expect(compiled(v), `${JSON.stringify(v)}: ${ajv.errorsText(compiled.errors)}`).toBe(true);
    }
  });

  it('describes each value with the text the validator reports as expected', () => {
    expect(port.schema.description).toBe(port.expected);
    expect(nullable(port).schema.description).toBe(nullable(port).expected);
    expect(listOf(port).schema.description).toBe(listOf(port).expected);
  });

  it('learns a mapping\'s keys from its reader, and leaves a key that no spec reads unconstrained', () => {
    const m = mapping('a thing', ['added', 'forgotten'], (s) => ({ added: s.opt('added', bool, false) }));
    const schema = m.schema as { properties: Record<string, JsonSchema>; additionalProperties: boolean };
    expect(schema.additionalProperties).toBe(false);
    expect(constrains(schema.properties.added!)).toBe(true);
    // This is what the "typed schema for every key" test above catches in the real document.
    expect(schema.properties.forgotten).toEqual({});
  });
});
