/**
 * `tls.cert`/`tls.key` (and each SNI pair) as lists, one pair per key type: the validator's
 * shape and length rules, the loader and `--check` with every problem at its item's path
 * (`tls.cert[1]`), two certificates of one key type refused, and the watcher's file list.
 */
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { gatewaySchema } from '../../../src/config/document-schema.ts';
import { DEFAULTS, type TlsConfig } from '../../../src/config/schema.ts';
import { checkTlsMaterial, loadTlsMaterial, TlsMaterialError } from '../../../src/config/tls-material.ts';
import { tlsFiles } from '../../../src/net/cert-watch.ts';
import type { Logger } from '../../../src/util/logger.ts';
import { makeCert, type CertFiles } from '../../harness/certs.ts';
import { makeTempDir } from '../../harness/child-processes.ts';
import { makeKeyTypeCert } from '../../harness/keytype-certs.ts';
import { configOf, minimal, onlyProblem, problemsOf } from './helpers.ts';

const silent: Logger = {
  trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined,
  child: () => silent,
};

function tlsConfig(pair: Pick<TlsConfig, 'cert' | 'key'>, sni: TlsConfig['sni'] = {}): TlsConfig {
  return { ...pair, minVersion: 'TLSv1.2', ciphers: DEFAULTS.tls.ciphers, handshakeTimeout: 10_000, sni };
}

async function rejection(p: Promise<unknown>): Promise<TlsMaterialError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(TlsMaterialError);
  return err as TlsMaterialError;
}

describe('validateConfig: certificate lists', () => {
  it('reads cert and key lists, resolving each path against the config folder, and keeps a single path a string', () => {
    const config = configOf((raw) => {
      raw.tls = {
        cert: ['certs/rsa.crt', '/abs/ecdsa.crt'], key: ['certs/rsa.key', '/abs/ecdsa.key'],
        sni: { 'mail.example.org': { cert: ['m-rsa.crt', 'm-ec.crt'], key: ['m-rsa.key', 'm-ec.key'] }, 'b.example.org': { cert: 'b.crt', key: 'b.key' } },
      };
    });
    expect(config.tls.cert).toEqual(['/etc/pop3gw/certs/rsa.crt', '/abs/ecdsa.crt']);
    expect(config.tls.key).toEqual(['/etc/pop3gw/certs/rsa.key', '/abs/ecdsa.key']);
    expect(config.tls.sni['mail.example.org']).toEqual({
      cert: ['/etc/pop3gw/m-rsa.crt', '/etc/pop3gw/m-ec.crt'], key: ['/etc/pop3gw/m-rsa.key', '/etc/pop3gw/m-ec.key'],
    });
    expect(config.tls.sni['b.example.org']).toEqual({ cert: '/etc/pop3gw/b.crt', key: '/etc/pop3gw/b.key' });
    expect(Object.isFrozen(config.tls.cert)).toBe(true);
  });

  it('reports lists of different lengths at the key', () => {
    const p = onlyProblem((raw) => (raw.tls = { cert: ['a.crt', 'b.crt'], key: ['a.key'] }));
    expect(p).toMatchObject({ path: 'tls.key', message: 'key names 1 file(s) but cert names 2', expected: expect.stringContaining('one key file per certificate') });
  });

  it('reports a list of two certificates with the single default key file', () => {
    expect(onlyProblem((raw) => (raw.tls = { cert: ['a.crt', 'b.crt'] })).path).toBe('tls.key');
  });

  it('reports only the bad item, not a length mismatch, when one item of a list is invalid', () => {
    expect(onlyProblem((raw) => (raw.tls = { cert: ['a.crt', ''], key: ['a.key', 'b.key'] })).path).toBe('tls.cert[1]');
  });

  it('reports an SNI pair of lists of different lengths at its key', () => {
    const p = onlyProblem((raw) => (raw.tls = { sni: { 'mail.example.org': { cert: ['a.crt', 'b.crt'], key: ['a.key', 'b.key', 'c.key'] } } }));
    expect(p).toMatchObject({ path: 'tls.sni["mail.example.org"].key', message: 'key names 3 file(s) but cert names 2' });
  });

  it('reports an empty list, a bad item at its index, and a value that is neither', () => {
    const problems = problemsOf((raw) => (raw.tls = { cert: [], key: ['a.key', ''], sni: { 'x.example.org': { cert: 5, key: 'k' } } }));
    expect(problems.map((p) => p.path)).toEqual(['tls.cert', 'tls.key[1]', 'tls.sni["x.example.org"].cert']);
    expect(problems[2]!.expected).toMatch(/or a list of them/);
  });

  it('has a JSON Schema that takes a path or a non-empty list of paths', () => {
    const check = new Ajv({ allowUnionTypes: true, strict: false }).compile(gatewaySchema());
    const withTls = (t: unknown): unknown => ({ ...minimal(), tls: t });
    expect(check(withTls({ cert: ['a.crt', 'b.crt'], key: ['a.key', 'b.key'] }))).toBe(true);
    expect(check(withTls({ cert: 'a.crt', key: 'a.key', sni: { 'm.example.org': { cert: ['a.crt'], key: ['a.key'] } } }))).toBe(true);
    expect(check(withTls({ cert: [], key: 'a.key' }))).toBe(false);
    expect(check(withTls({ cert: [1], key: 'a.key' }))).toBe(false);
  });
});

describe('loading and checking certificate lists', () => {
  let dir: string;
  let rsa: CertFiles;
  let ecdsa: CertFiles;
  let rsa2: CertFiles;

  beforeAll(async () => {
    dir = makeTempDir('certlists');
    [rsa, ecdsa, rsa2] = await Promise.all([makeKeyTypeCert('rsa'), makeKeyTypeCert('ecdsa'), makeCert()]);
  });

  const dual = (): Pick<TlsConfig, 'cert' | 'key'> => ({ cert: [rsa.certFile, ecdsa.certFile], key: [rsa.keyFile, ecdsa.keyFile] });

  it('loads an RSA and an ECDSA pair into one context; the first one is the fingerprint logged', async () => {
    const material = await loadTlsMaterial(tlsConfig(dual()), silent);
    expect(material.fingerprint256).toBe(rsa.fingerprint256);
    const opts = material.serverOptions();
    expect(opts.cert).toHaveLength(2);
    expect(opts.key).toHaveLength(2);
    expect(await checkTlsMaterial(tlsConfig(dual()))).toEqual([]);
  });

  it('refuses two certificates of the same key type in one list, at the second one', async () => {
    const cfg = tlsConfig({ cert: [rsa.certFile, rsa2.certFile], key: [rsa.keyFile, rsa2.keyFile] });
    const err = await rejection(loadTlsMaterial(cfg, silent));
    expect(err).toMatchObject({ code: 'KEY_TYPE', path: 'tls.cert[1]', file: rsa2.certFile });
    expect(err.message).toContain('second RSA certificate');
    expect(await checkTlsMaterial(cfg)).toEqual([
      { path: 'tls.cert[1]', message: expect.stringContaining(`after ${rsa.certFile} (tls.cert[0])`), expected: expect.stringContaining('one certificate per key type') },
    ]);
  });

  it('names the bad item of a list: an unreadable certificate, a missing key, a key of another pair', async () => {
    const garbage = path.join(dir, 'garbage.crt');
    fs.writeFileSync(garbage, '-----BEGIN CERTIFICATE-----\nnot base64\n');
    const gone = path.join(dir, 'gone.key');
    expect(await rejection(loadTlsMaterial(tlsConfig({ cert: [rsa.certFile, garbage], key: [rsa.keyFile, ecdsa.keyFile] }), silent)))
      .toMatchObject({ code: 'PARSE', path: 'tls.cert[1]', file: garbage });
    expect(await rejection(loadTlsMaterial(tlsConfig({ cert: [rsa.certFile, ecdsa.certFile], key: [rsa.keyFile, gone] }), silent)))
      .toMatchObject({ code: 'MISSING', path: 'tls.key[1]', file: gone });
    const swapped = tlsConfig({ cert: [rsa.certFile, ecdsa.certFile], key: [ecdsa.keyFile, rsa.keyFile] });
    expect(await rejection(loadTlsMaterial(swapped, silent))).toMatchObject({ code: 'MISMATCH', path: 'tls.key[0]' });
    expect((await checkTlsMaterial(swapped)).map((p) => p.path)).toEqual(['tls.key[0]', 'tls.key[1]']);
  });

  it('never generates a self-signed pair for a list, even when every file is missing', async () => {
    const files = ['a.crt', 'b.crt', 'a.key', 'b.key'].map((f) => path.join(dir, 'none', f));
    const cfg = tlsConfig({ cert: files.slice(0, 2), key: files.slice(2) });
    expect(await rejection(loadTlsMaterial(cfg, silent))).toMatchObject({ code: 'MISSING', path: 'tls.cert[0]' });
    expect((await checkTlsMaterial(cfg)).map((p) => p.path)).toEqual(['tls.cert[0]', 'tls.key[0]', 'tls.cert[1]', 'tls.key[1]']);
    expect(fs.existsSync(path.join(dir, 'none'))).toBe(false);
  });

  it('reports the problems of an SNI pair of lists under the entry and index', async () => {
    const cfg = tlsConfig(dual(), { 'mail.example.org': { cert: [ecdsa.certFile, rsa2.certFile, rsa.certFile], key: [ecdsa.keyFile, rsa2.keyFile, rsa.keyFile] } });
    expect((await checkTlsMaterial(cfg)).map((p) => p.path)).toEqual(['tls.sni["mail.example.org"].cert[2]']);
    expect(await rejection(loadTlsMaterial(cfg, silent))).toMatchObject({ code: 'KEY_TYPE', path: 'tls.sni["mail.example.org"].cert[2]' });
  });

  it('serves an SNI pair of lists', async () => {
    const material = await loadTlsMaterial(tlsConfig({ cert: rsa2.certFile, key: rsa2.keyFile }, { 'mail.example.org': dual() }), silent);
    const ctx = await new Promise<tls.SecureContext | undefined>((resolve, reject) => {
      material.serverOptions().SNICallback!('mail.example.org', (err, c) => (err ? reject(err) : resolve(c)));
    });
    expect(ctx).toBeDefined();
  });

  it('gives the watcher every file of every list, SNI pairs included', () => {
    const cfg = tlsConfig(dual(), { 'mail.example.org': { cert: ['/m/a.crt', '/m/b.crt'], key: ['/m/a.key', '/m/b.key'] }, 'x.example.org': { cert: '/x.crt', key: '/x.key' } });
    expect(tlsFiles(cfg).sort()).toEqual([
      rsa.certFile, ecdsa.certFile, rsa.keyFile, ecdsa.keyFile, '/m/a.crt', '/m/b.crt', '/m/a.key', '/m/b.key', '/x.crt', '/x.key',
    ].sort());
  });
});
