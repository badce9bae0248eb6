import { describe, expect, it } from 'vitest';
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

describe('sanitizeLine', () => {
  it('removes C0 controls and DEL and keeps everything else', () => {
    expect(sanitizeLine('+OK ready\r\n')).toBe('+OK ready');
    expect(sanitizeLine('+OK \x1b[31mred\x1b[0m\0\x7f')).toBe('+OK [31mred[0m');
    expect(sanitizeLine('+OK <1896.697170952@dbc.mtview.ca.us>\t')).toBe('+OK <1896.697170952@dbc.mtview.ca.us>');
    expect(sanitizeLine('caf\u00c3\u00a9 \u0085')).toBe('caf\u00c3\u00a9 \u0085');
  });
});
