import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseStatus, sanitizeLine, type StatusLine } from '../../../src/protocol/response.ts';
import { latin1 } from './chunking.ts';

describe('parseStatus', () => {
  const cases: { line: string; status: StatusLine | null }[] = [
    { line: '+OK', status: { kind: 'ok', code: null, text: '' } },
    { line: '+OK ', status: { kind: 'ok', code: null, text: '' } },
    { line: '+OK 2 320', status: { kind: 'ok', code: null, text: '2 320' } },
    { line: '+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>', status: { kind: 'ok', code: null, text: 'POP3 server ready <1896.697170952@dbc.mtview.ca.us>' } },
    { line: '+ok lower case', status: { kind: 'ok', code: null, text: 'lower case' } },
    { line: '-ERR', status: { kind: 'err', code: null, text: '' } },
    { line: '-ERR no such message', status: { kind: 'err', code: null, text: 'no such message' } },
    { line: '-err lower', status: { kind: 'err', code: null, text: 'lower' } },
    { line: '-ERR [SYS/TEMP] try later', status: { kind: 'err', code: 'SYS/TEMP', text: 'try later' } },
    { line: '-ERR [in-use] locked', status: { kind: 'err', code: 'IN-USE', text: 'locked' } },
    { line: '-ERR [LOGIN-DELAY]', status: { kind: 'err', code: 'LOGIN-DELAY', text: '' } },
    { line: '-ERR [AUTH] Authentication failed.', status: { kind: 'err', code: 'AUTH', text: 'Authentication failed.' } },
    { line: '-ERR [SYS/PERM/X] deep', status: { kind: 'err', code: 'SYS/PERM/X', text: 'deep' } },
    { line: '+OK [UTF8] enabled', status: { kind: 'ok', code: 'UTF8', text: 'enabled' } },
    { line: '-ERR [not closed', status: { kind: 'err', code: null, text: '[not closed' } },
    { line: '-ERR [] empty', status: { kind: 'err', code: null, text: '[] empty' } },
    { line: '-ERR [SYS//TEMP] empty level', status: { kind: 'err', code: null, text: '[SYS//TEMP] empty level' } },
    { line: '-ERR [SYS TEMP] space', status: { kind: 'err', code: null, text: '[SYS TEMP] space' } },
    { line: '-ERR [AUTH]glued', status: { kind: 'err', code: null, text: '[AUTH]glued' } },
    { line: '-ERR  [AUTH] two spaces', status: { kind: 'err', code: null, text: ' [AUTH] two spaces' } },
    { line: '+', status: { kind: 'continuation', code: null, text: '' } },
    { line: '+ ', status: { kind: 'continuation', code: null, text: '' } },
    { line: '+ VXNlcm5hbWU6', status: { kind: 'continuation', code: null, text: 'VXNlcm5hbWU6' } },
    { line: '+ [AUTH] not a code here', status: { kind: 'continuation', code: null, text: '[AUTH] not a code here' } },
    { line: '+OKAY', status: null },
    { line: '-ERROR', status: null },
    { line: '+Hello', status: null },
    { line: 'OK', status: null },
    { line: '', status: null },
    { line: '* OK IMAP4rev1', status: null },
    { line: '220 smtp ready', status: null },
  ];
  for (const c of cases) {
    it(`reads ${JSON.stringify(c.line)} as ${c.status === null ? 'not a status line' : c.status.kind}`, () => {
      expect(parseStatus(latin1(c.line))).toEqual(c.status);
    });
  }

  it('keeps 8-bit text as latin1 so the bytes can be relayed unchanged', () => {
    const line = Buffer.from('+OK Gr\u00fc\u00dfe', 'utf8');
    const status = parseStatus(line);
    expect(Buffer.from(status?.text ?? '', 'latin1')).toEqual(Buffer.from('Gr\u00fc\u00dfe', 'utf8'));
  });
});

describe('parseStatus: the status indicator, case-folded', () => {
  /** The indicator test as it was written first: upper-case the first four characters. */
  const reference = (s: string): 'ok' | 'err' | null => {
    const head = s.slice(0, 4).toUpperCase();
    return head.startsWith('+OK') ? 'ok' : head === '-ERR' ? 'err' : null;
  };

  it('tells +OK and -ERR apart in any case, and nothing else, exactly as upper-casing did', () => {
    const latin1Char = fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c));
    const near = fc.constantFrom('+', '-', 'o', 'O', 'k', 'K', 'e', 'E', 'r', 'R', ' ', '\u00ff', '\u00b5', '\u00df');
    fc.assert(fc.property(fc.array(fc.oneof(near, latin1Char), { maxLength: 6 }), (chars) => {
      const s = chars.join('');
      const got = parseStatus(latin1(s));
      const want = reference(s);
      const continuation = s === '+' || s.startsWith('+ ');
      if (continuation) return got?.kind === 'continuation';
      if (want === null) return got === null;
      const after = want === 'ok' ? 3 : 4;
      const wellFormed = s.length === after || s[after] === ' ';
      return wellFormed ? got?.kind === want : got === null;
    }), { numRuns: 5000 });
    for (const s of ['+ok', '+Ok', '-err', '-ErR x']) expect(parseStatus(latin1(s))).not.toBeNull();
    for (const s of ['+o', '-er', '+0K', '-ERRR', '\u00abOK']) expect(parseStatus(latin1(s))).toBeNull();
  });
});

describe('sanitizeLine', () => {
  it('removes C0 controls and DEL and keeps everything else', () => {
    expect(sanitizeLine('+OK ready\r\n')).toBe('+OK ready');
    expect(sanitizeLine('+OK \x1b[31mred\x1b[0m\0\x7f')).toBe('+OK [31mred[0m');
    expect(sanitizeLine('+OK <1896.697170952@dbc.mtview.ca.us>\t')).toBe('+OK <1896.697170952@dbc.mtview.ca.us>');
    expect(sanitizeLine('caf\u00c3\u00a9 \u0085')).toBe('caf\u00c3\u00a9 \u0085');
  });
});
