import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { KNOWN_VERBS } from '../../../src/config/schema.ts';
import { latin1AsUtf8, parseCommand, serializeCommand, utf8AsLatin1 } from '../../../src/protocol/command.ts';
import { latin1 } from './chunking.ts';

describe('parseCommand', () => {
  const ok: { line: string; verb: string; args: string[]; rest: string }[] = [
    { line: 'STAT', verb: 'STAT', args: [], rest: '' },
    { line: 'stat', verb: 'STAT', args: [], rest: '' },
    { line: 'rEtR 1', verb: 'RETR', args: ['1'], rest: '1' },
    { line: 'TOP 1 10', verb: 'TOP', args: ['1', '10'], rest: '1 10' },
    { line: 'TOP  1   10 ', verb: 'TOP', args: ['1', '10'], rest: ' 1   10 ' },
    { line: 'PASS my secret  pass', verb: 'PASS', args: ['my', 'secret', 'pass'], rest: 'my secret  pass' },
    { line: 'PASS  leading', verb: 'PASS', args: ['leading'], rest: ' leading' },
    { line: 'PASS tab\there', verb: 'PASS', args: ['tab\there'], rest: 'tab\there' },
    { line: 'USER ', verb: 'USER', args: [], rest: '' },
    { line: 'USER j\u00c3\u00bcrgen', verb: 'USER', args: ['j\u00c3\u00bcrgen'], rest: 'j\u00c3\u00bcrgen' },
    { line: 'APOP mrose c4c9334bac560ecc979e58001b3e22fb', verb: 'APOP', args: ['mrose', 'c4c9334bac560ecc979e58001b3e22fb'], rest: 'mrose c4c9334bac560ecc979e58001b3e22fb' },
    { line: 'XAUTHORIZATIONAB', verb: 'XAUTHORIZATIONAB', args: [], rest: '' },
  ];
  for (const c of ok) {
    it(`parses ${JSON.stringify(c.line)} as ${c.verb} with its arguments`, () => {
      expect(parseCommand(latin1(c.line))).toEqual({ ok: true, command: { verb: c.verb, args: c.args, rest: c.rest } });
    });
  }

  const bad: { line: string; error: 'empty' | 'bad-char' | 'bad-verb' }[] = [
    { line: '', error: 'empty' },
    { line: '   ', error: 'empty' },
    { line: ' \t ', error: 'empty' },
    { line: 'USER a\rDELE 1', error: 'bad-char' },
    { line: 'USER a\nDELE 1', error: 'bad-char' },
    { line: 'USER a\0b', error: 'bad-char' },
    { line: '\0', error: 'bad-char' },
    { line: 'NOOP\x1b[0m', error: 'bad-char' },
    { line: 'NOOP\x7f', error: 'bad-char' },
    { line: 'PASS x\x01', error: 'bad-char' },
    { line: ' USER a', error: 'bad-verb' },
    { line: 'US3R a', error: 'bad-verb' },
    { line: 'USER\ta', error: 'bad-verb' },
    { line: 'R\u00c9TR 1', error: 'bad-verb' },
    { line: 'ABCDEFGHIJKLMNOPQ', error: 'bad-verb' },
    { line: '+OK', error: 'bad-verb' },
  ];
  for (const c of bad) {
    it(`refuses ${JSON.stringify(c.line)} as ${c.error}`, () => {
      expect(parseCommand(latin1(c.line))).toEqual({ ok: false, error: c.error });
    });
  }

  it('refuses every C0 control byte except HTAB anywhere in the line', () => {
    for (let b = 0; b < 0x20; b++) {
      const line = Buffer.concat([latin1('PASS a'), Buffer.from([b]), latin1('b')]);
      const result = parseCommand(line);
      if (b === 0x09) expect(result.ok).toBe(true);
      else expect(result).toEqual({ ok: false, error: 'bad-char' });
    }
  });

  it('keeps every 8-bit byte of the arguments through serializeCommand', () => {
    const arg = fc.uint8Array({ minLength: 1, maxLength: 20 }).map((bytes) =>
      Buffer.from(bytes.map((b) => (b < 0x21 || b === 0x7f ? 0x41 : b))),
    );
    fc.assert(
      fc.property(fc.array(arg, { maxLength: 4 }), (args) => {
        const line = Buffer.concat([latin1('USER'), ...args.flatMap((a) => [latin1(' '), a])]);
        const parsed = parseCommand(line);
        expect(parsed.ok).toBe(true);
        if (!parsed.ok) return;
        const wire = serializeCommand(parsed.command.verb, parsed.command.args);
        expect(wire).toEqual(Buffer.concat([line, latin1('\r\n')]));
      }),
    );
  });
});

describe('serializeCommand', () => {
  it('joins the verb and arguments with single spaces and ends with CRLF', () => {
    expect(serializeCommand('TOP', ['1', '0'])).toEqual(latin1('TOP 1 0\r\n'));
    expect(serializeCommand('QUIT', [])).toEqual(latin1('QUIT\r\n'));
    expect(serializeCommand('PASS', ['with space'])).toEqual(latin1('PASS with space\r\n'));
  });

  it('refuses CR, LF or NUL so nothing can be injected into the backend conversation', () => {
    expect(() => serializeCommand('USER', ['a\r\nDELE 1'])).toThrow(RangeError);
    expect(() => serializeCommand('USER', ['a\nb'])).toThrow(RangeError);
    expect(() => serializeCommand('PASS', ['a\0b'])).toThrow(RangeError);
  });

  it('refuses chars above U+00FF, which latin1 cannot carry', () => {
    expect(() => serializeCommand('USER', ['j\u00fcrgen\u20ac'])).toThrow(RangeError);
  });

  it('gives the same bytes for a bare verb every time, also after the first (kept) one', () => {
    for (let i = 0; i < 3; i++) expect(serializeCommand('NOOP', []).toString('latin1')).toBe('NOOP\r\n');
    expect(serializeCommand('RETR', ['1']).toString('latin1')).toBe('RETR 1\r\n');
    expect(serializeCommand('STAT', []).toString('latin1')).toBe('STAT\r\n');
  });

  it('upper-cases the verb whatever its case, and parse → serialize is stable on any command', () => {
    for (const [line, verb] of [['noop', 'NOOP'], ['NoOp', 'NOOP'], ['NOOP', 'NOOP'], ['rEtR 3', 'RETR']] as const) {
      const p = parseCommand(latin1(line));
      expect(p.ok && p.command.verb).toBe(verb);
    }
    fc.assert(fc.property(
      fc.stringMatching(/^[A-Za-z]{1,16}$/),
      fc.array(fc.stringMatching(/^[!-~]{1,8}$/), { maxLength: 3 }),
      (v, args) => {
        const p = parseCommand(latin1([v, ...args].join(' ')));
        if (!p.ok) return false;
        const wire = serializeCommand(p.command.verb, p.command.args).toString('latin1');
        return wire === `${[v.toUpperCase(), ...args].join(' ')}\r\n`;
      },
    ));
  });

  it('gives every short verb, keyword or not, in any case, as its upper-cased text (keywords come from a table)', () => {
    const anyCase = (v: string) => fc.array(fc.boolean(), { minLength: v.length, maxLength: v.length })
      .map((up) => [...v].map((c, i) => (up[i] ? c : c.toLowerCase())).join(''));
    fc.assert(fc.property(
      fc.oneof(fc.constantFrom(...KNOWN_VERBS).chain(anyCase), fc.stringMatching(/^[A-Za-z]{1,5}$/)),
      (v) => {
        const p = parseCommand(latin1(`${v} 1`));
        return p.ok && p.command.verb === v.toUpperCase() && p.command.args.length === 1;
      },
    ), { numRuns: 2000 });
    // Neighbours of a keyword (one letter more or less, or another letter) are themselves.
    for (const v of ['TO', 'TOPS', 'STA', 'STATS', 'QUIX', 'USERS', 'A', 'ZZZZ']) {
      const p = parseCommand(latin1(v));
      expect(p.ok && p.command.verb).toBe(v);
    }
  });

  it('sends a Unicode name as its UTF-8 bytes through utf8AsLatin1', () => {
    expect(serializeCommand('USER', [utf8AsLatin1('j\u00fcrgen')])).toEqual(Buffer.from('USER j\u00fcrgen\r\n', 'utf8'));
  });
});

describe('utf8AsLatin1 and latin1AsUtf8', () => {
  it('read a USER argument typed in UTF-8 as the Unicode name', () => {
    const parsed = parseCommand(Buffer.from('USER j\u00fcrgen@\u4f8b\u3048.jp', 'utf8'));
    expect(parsed.ok && latin1AsUtf8(parsed.command.args[0]!)).toBe('j\u00fcrgen@\u4f8b\u3048.jp');
  });

  it('give null for bytes that are not UTF-8', () => {
    expect(latin1AsUtf8('j\u00fcrgen')).toBeNull();
  });

  it('are inverse to each other on any Unicode text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (text) => {
        expect(latin1AsUtf8(utf8AsLatin1(text))).toBe(text);
      }),
    );
  });
});
