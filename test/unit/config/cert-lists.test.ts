/**
 * `tls.cert`/`tls.key` as lists, one pair per key type: the validator's shape and length rules,
 * the loader and `--check` with every problem at its item's path (`tls.cert[1]`), two
 * certificates of one key type refused, and the watcher's file list. SNI entries take one file
 * each and no list in tls.cert beside them: Node's SNI hook installs one certificate per name
 * over the default context's (UseSNIContext), so the others would leak into that name.
 */
import fs from 'node:fs';
import path from 'node:path';
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
      raw.tls = { cert: ['certs/rsa.crt', '/abs/ecdsa.crt'], key: ['certs/rsa.key', '/abs/ecdsa.key'] };
    });
    expect(config.tls.cert).toEqual(['/etc/pop3gw/certs/rsa.crt', '/abs/ecdsa.crt']);
    expect(config.tls.key).toEqual(['/etc/pop3gw/certs/rsa.key', '/abs/ecdsa.key']);
    expect(Object.isFrozen(config.tls.cert)).toBe(true);
    expect(configOf((raw) => (raw.tls = { cert: 'a.crt', key: 'a.key' })).tls).toMatchObject({ cert: '/etc/pop3gw/a.crt', key: '/etc/pop3gw/a.key' });
    // A list of one is a list: it may stand beside SNI entries.
    expect(configOf((raw) => (raw.tls = { cert: ['a.crt'], key: ['a.key'], sni: { 'b.example.org': { cert: 'b.crt', key: 'b.key' } } })).tls.cert)
      .toEqual(['/etc/pop3gw/a.crt']);
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

  it('refuses an SNI pair of lists, at each list, saying why', () => {
    const problems = problemsOf((raw) => (raw.tls = { sni: { 'mail.example.org': { cert: ['a.crt', 'b.crt'], key: ['a.key', 'b.key'] } } }));
    expect(problems).toEqual([
      { path: 'tls.sni["mail.example.org"].cert', message: 'found a list of 2: an SNI name gets one certificate, never one per key type', expected: expect.stringContaining('single file per SNI entry') },
      { path: 'tls.sni["mail.example.org"].key', message: expect.stringContaining('found a list of 2'), expected: expect.any(String) },
    ]);
  });

  it('refuses a list of default certificates beside SNI entries, at tls.sni', () => {
    const p = onlyProblem((raw) => (raw.tls = { cert: ['a.crt', 'b.crt'], key: ['a.key', 'b.key'], sni: { 'm.example.org': { cert: 'm.crt', key: 'm.key' } } }));
    expect(p).toMatchObject({ path: 'tls.sni', message: expect.stringContaining('tls.cert lists 2 certificates and tls.sni has entries') });
  });

  it('reports an empty list, a bad item at its index, and a value that is neither', () => {
    const problems = problemsOf((raw) => (raw.tls = { cert: [], key: ['a.key', ''] }));
    expect(problems.map((p) => p.path)).toEqual(['tls.cert', 'tls.key[1]']);
    expect(onlyProblem((raw) => (raw.tls = { cert: 5 })).expected).toMatch(/or a list of them/);
  });

  it('has a JSON Schema that takes a path or a non-empty list of paths', () => {
    const check = new Ajv({ allowUnionTypes: true, strict: false }).compile(gatewaySchema());
    const withTls = (t: unknown): unknown => ({ ...minimal(), tls: t });
    expect(check(withTls({ cert: ['a.crt', 'b.crt'], key: ['a.key', 'b.key'] }))).toBe(true);
    expect(check(withTls({ cert: 'a.crt', key: 'a.key', sni: { 'm.example.org': { cert: 'm.crt', key: 'm.key' } } }))).toBe(true);
    expect(check(withTls({ cert: 'a.crt', key: 'a.key', sni: { 'm.example.org': { cert: ['m.crt'], key: ['m.key'] } } }))).toBe(false);
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

  it('reports an SNI certificate of another key type than the default one (--check), and warns at load', async () => {
    const cfg = tlsConfig({ cert: rsa.certFile, key: rsa.keyFile }, {
      'ec.example.org': { cert: ecdsa.certFile, key: ecdsa.keyFile },
      'rsa.example.org': { cert: rsa2.certFile, key: rsa2.keyFile },
    });
    expect(await checkTlsMaterial(cfg)).toEqual([{
      path: 'tls.sni["ec.example.org"].cert',
      message: `${ecdsa.certFile} is ECDSA but the default certificate is RSA: clients that prefer RSA would get the default certificate for this name`,
      expected: expect.stringContaining('key type (RSA)'),
    }]);
    const warnings: unknown[] = [];
    const log: Logger = { ...silent, warn: (o: unknown) => void warnings.push(o) };
    await loadTlsMaterial(cfg, log);
    expect(warnings).toEqual([{ path: 'tls.sni["ec.example.org"].cert', file: ecdsa.certFile }]);
  });

  it('gives the watcher every file of the lists and of every SNI pair', () => {
    const cfg = tlsConfig(dual(), { 'x.example.org': { cert: '/x.crt', key: '/x.key' } });
    expect(tlsFiles(cfg).sort()).toEqual([rsa.certFile, ecdsa.certFile, rsa.keyFile, ecdsa.keyFile, '/x.crt', '/x.key'].sort());
  });
});
