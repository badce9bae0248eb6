import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AuditChain, GENESIS, canonicalJson, verifyLines } from '../../../src/audit/chain.ts';

/** The definition the audit files were sealed with: JSON.stringify with a key-sorting replacer. */
/**
 * The sorting-replacer definition. An own "__proto__" key is copied as a key (defineProperty):
 * a plain assignment would set the copy's prototype and drop the key from the hash, so a
 * "__proto__" slipped into a sealed line would still verify.
 */
function referenceCanonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) Object.defineProperty(sorted, k, { value: (v as Record<string, unknown>)[k], enumerable: true, writable: true, configurable: true });
    return sorted;
  });
}

function sealed(n: number, chain = new AuditChain()): string[] {
  return Array.from({ length: n }, (_, i) => chain.seal({ time: `2024-05-01T00:00:0${i % 10}.000Z`, event: 'command', n: i, nested: { b: 1, a: [i] } }));
}

describe('audit hash chain', () => {
  it('seal appends seq, prev and hash, starting from genesis', () => {
    const [first, second] = sealed(2).map((l) => JSON.parse(l));
    expect(first).toMatchObject({ seq: 1, prev: GENESIS });
    expect(first.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(second).toMatchObject({ seq: 2, prev: first.hash });
  });

  it('canonical JSON does not depend on key order', () => {
    expect(canonicalJson({ b: 1, a: { d: 2, c: [{ f: 1, e: 2 }] } })).toBe(canonicalJson({ a: { c: [{ e: 2, f: 1 }], d: 2 }, b: 1 }));
  });

  it('canonical JSON is byte for byte the sorting-replacer definition, on random values', () => {
    const value = fc.anything({
      key: fc.oneof(fc.string(), fc.constantFrom('0', '1', '2', '10', '007', '4294967294', '4294967295', '-1', 'hash', 'seq', '__proto__')),
      withNullPrototype: true, withObjectString: true, withDate: true, withSparseArray: true,
    });
    fc.assert(fc.property(value, (v) => {
      expect(canonicalJson(v)).toBe(referenceCanonicalJson(v));
    }), { numRuns: 2000 });
    class WithToJson {
      toJSON(key: string): unknown {
        return { key, b: 2, a: undefined };
      }
    }
    const odd = { x: new WithToJson(), list: [new WithToJson(), undefined, () => 1, Symbol('s')], f: () => 1, n: NaN, inf: -Infinity, d: new Date(0) };
    expect(canonicalJson(odd)).toBe(referenceCanonicalJson(odd));
  });

  it('an own "__proto__" key is hashed like any other, so one slipped into a sealed line is caught', () => {
    // JSON.parse (what verify reads a line with) makes "__proto__" an own key.
    const parsed = JSON.parse('{"b":1,"__proto__":{"z":1,"a":[{"__proto__":2,"c":3}]}}');
    expect(canonicalJson(parsed)).toBe('{"__proto__":{"a":[{"__proto__":2,"c":3}],"z":1},"b":1}');
    expect(canonicalJson(parsed)).toBe(referenceCanonicalJson(parsed));
    const [line] = sealed(1);
    const tampered = line!.replace('{', '{"__proto__":{"user":"mallory"},');
    expect(verifyLines([tampered])).toMatchObject({ ok: false, problem: 'hash-mismatch' });
  });

  /** Two records as the files before the fourteenth pass sealed them: sha256(prev + canonical JSON). */
  const canonicalSealed = [
    '{"time":"2024-05-01T00:00:00.000Z","session":"abc","event":"login","user":"jürgen 🦊","result":"ok","detail":{"z":1,"a":[3,{"y":null}]},'
      + '"seq":1,"prev":"0000000000000000000000000000000000000000000000000000000000000000","hash":"43c11e1fb7ad03f1e6abcc4552283a0bfe0fff8166ecc7e2878e6fb52f4f4fef"}',
    '{"2":"y","10":"x","time":"2024-05-01T00:00:01.000Z","event":"command","b":0,"big":1e+21,'
      + '"seq":2,"prev":"43c11e1fb7ad03f1e6abcc4552283a0bfe0fff8166ecc7e2878e6fb52f4f4fef","hash":"0e01cc37c3df8f8f27c1cfb257d327f2eae50ed57332dc3fa335107669818fc3"}',
  ];

  it('seals each record by the sha256 of its own line without the hash member (golden records, hashes from Python hashlib)', () => {
    const chain = new AuditChain();
    const lines = [
      chain.seal({ time: '2024-05-01T00:00:00.000Z', session: 'abc', event: 'login', user: 'jürgen 🦊', result: 'ok', detail: { z: 1, a: [3, { y: null, b: undefined }] } }),
      chain.seal({ time: '2024-05-01T00:00:01.000Z', event: 'command', '10': 'x', '2': 'y', b: -0, big: 1e21, seq: 99, hash: 'h' }),
    ];
    expect(lines).toEqual([
      '{"time":"2024-05-01T00:00:00.000Z","session":"abc","event":"login","user":"jürgen 🦊","result":"ok","detail":{"z":1,"a":[3,{"y":null}]},'
        + '"seq":1,"prev":"0000000000000000000000000000000000000000000000000000000000000000","hash":"8958dee788c0a89b106d264666b439ff92bf9fb5531fa99f8b8d3a947c68134d"}',
      '{"2":"y","10":"x","time":"2024-05-01T00:00:01.000Z","event":"command","b":0,"big":1e+21,'
        + '"seq":2,"prev":"8958dee788c0a89b106d264666b439ff92bf9fb5531fa99f8b8d3a947c68134d","hash":"f5c8e841c5e41c0fd5329a3cd97d44fc307be47617f57ee054aac434c5edc135"}',
    ]);
    expect(verifyLines(lines)).toMatchObject({ ok: true, count: 2 });
  });

  it('files sealed the earlier way (canonical JSON) still verify, and an edit to one still fails', () => {
    expect(verifyLines(canonicalSealed)).toMatchObject({ ok: true, count: 2, head: { seq: 2, hash: '0e01cc37c3df8f8f27c1cfb257d327f2eae50ed57332dc3fa335107669818fc3' } });
    // A new record continues an old file's chain.
    const next = new AuditChain({ seq: 2, hash: '0e01cc37c3df8f8f27c1cfb257d327f2eae50ed57332dc3fa335107669818fc3' }).seal({ time: 't', event: 'connect' });
    expect(verifyLines([...canonicalSealed, next])).toMatchObject({ ok: true, count: 3 });
    const edited = [canonicalSealed[0]!.replace('"result":"ok"', '"result":"err"'), canonicalSealed[1]!];
    expect(verifyLines(edited)).toMatchObject({ ok: false, line: 1, problem: 'hash-mismatch' });
  });

  it('a line with the right hash but changed text around it (spaces, key order) no longer verifies by its text', () => {
    const [line] = sealed(1);
    const spaced = line!.replace('"event":"command"', '"event": "command"');
    expect(verifyLines([spaced])).toMatchObject({ ok: false, line: 1, problem: 'hash-mismatch' });
    const truncatedTail = `${line!.slice(0, -2)}"}`.replace(/"hash":"[0-9a-f]{64}/, (m) => m.slice(0, -1));
    expect(verifyLines([truncatedTail])).toMatchObject({ ok: false, line: 1, problem: 'hash-mismatch' });
  });

  it('sealOwned gives the same line as seal without copying, and copies a record that carries a chain name', () => {
    const a = new AuditChain();
    const b = new AuditChain();
    const rec = () => ({ time: '2024-05-01T00:00:00.000Z', event: 'login', user: 'bob', detail: { z: 1, a: 2 } });
    const owned: Record<string, unknown> = rec();
    expect(b.sealOwned(owned)).toBe(a.seal(rec()));
    expect(owned).toMatchObject({ seq: 1, prev: GENESIS });
    const carrying: Record<string, unknown> = { ...rec(), seq: 99, hash: 'forged' };
    expect(b.sealOwned(carrying)).toBe(a.seal({ ...rec(), seq: 99, hash: 'forged' }));
    expect(carrying).toMatchObject({ seq: 99, hash: 'forged' });
  });

  it('an intact chain verifies and reports its head', () => {
    const lines = sealed(5);
    const r = verifyLines(lines);
    expect(r).toMatchObject({ ok: true, count: 5, head: { seq: 5, hash: JSON.parse(lines[4]!).hash } });
  });

  it('records with unusual values (unicode, empty objects, null) still verify', () => {
    const chain = new AuditChain();
    const lines = [
      chain.seal({ user: 'jürgen 🦊', headers: { Subject: '\u2028odd\ud800' }, uid: null, detail: {} }),
      chain.seal({ user: undefined, n: -0, big: 1e21 }),
    ];
    expect(verifyLines(lines)).toMatchObject({ ok: true, count: 2 });
  });

  it('an edited record is a hash mismatch on its own line', () => {
    const lines = sealed(5);
    lines[2] = lines[2]!.replace('"event":"command"', '"event":"connect"');
    expect(verifyLines(lines)).toMatchObject({ ok: false, line: 3, problem: 'hash-mismatch', seq: 3, count: 2 });
  });

  it('an edited record whose hash was recomputed breaks the link to the next one', () => {
    const lines = sealed(5);
    const forged = new AuditChain({ seq: 2, hash: JSON.parse(lines[1]!).hash }).seal({ time: 'x', event: 'forged' });
    lines[2] = forged;
    expect(verifyLines(lines)).toMatchObject({ ok: false, line: 4, problem: 'broken-link', seq: 4 });
  });

  it('a deleted record is a seq gap at the line after it', () => {
    const lines = sealed(5);
    lines.splice(2, 1);
    expect(verifyLines(lines)).toMatchObject({ ok: false, line: 3, problem: 'seq-gap', seq: 4, expectedSeq: 3 });
  });

  it('reordered records are a seq gap', () => {
    const lines = sealed(5);
    [lines[1], lines[2]] = [lines[2]!, lines[1]!];
    expect(verifyLines(lines)).toMatchObject({ ok: false, line: 2, problem: 'seq-gap' });
  });

  it('a line that is not a chained record is bad-json', () => {
    const lines = sealed(3);
    lines[1] = '{"time":"2024"';
    expect(verifyLines(lines)).toMatchObject({ ok: false, line: 2, problem: 'bad-json' });
    expect(verifyLines(['{"event":"connect"}'])).toMatchObject({ ok: false, line: 1, problem: 'bad-json' });
  });

  it('blank lines are skipped but still counted for line numbers', () => {
    const lines = sealed(3);
    lines.splice(1, 0, '');
    expect(verifyLines(lines)).toMatchObject({ ok: true, count: 3 });
    lines[3] = lines[3]!.replace('"n":2', '"n":9');
    expect(verifyLines(lines)).toMatchObject({ ok: false, line: 4 });
  });

  it('a file that starts mid-chain (after a rotation) verifies on its own', () => {
    const chain = new AuditChain();
    sealed(3, chain);
    const rotatedAway = sealed(3, chain);
    expect(verifyLines(rotatedAway)).toMatchObject({ ok: true, count: 3, head: { seq: 6 } });
  });

  it('with the previous file head given, the next file must continue it', () => {
    const chain = new AuditChain();
    const older = sealed(3, chain);
    const lost = sealed(2, chain);
    const newer = sealed(2, chain);
    const head = verifyLines(older);
    if (!head.ok) throw new Error('older file should verify');
    expect(verifyLines(lost, head.head)).toMatchObject({ ok: true });
    expect(verifyLines(newer, head.head)).toMatchObject({ ok: false, line: 1, problem: 'seq-gap', expectedSeq: 4, seq: 6 });
  });

  it('a chain continued from a head links to it', () => {
    const first = sealed(2);
    const head = { seq: 2, hash: JSON.parse(first[1]!).hash as string };
    const more = sealed(2, new AuditChain(head));
    expect(verifyLines([...first, ...more])).toMatchObject({ ok: true, count: 4 });
  });

  it('fields named seq, prev or hash in a record cannot break its own verification', () => {
    const line = new AuditChain().seal({ seq: 99, prev: 'x', hash: 'y', event: 'connect' });
    expect(JSON.parse(line)).toMatchObject({ seq: 1, prev: GENESIS });
    expect(verifyLines([line])).toMatchObject({ ok: true });
  });
});
