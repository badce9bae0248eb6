import { describe, expect, it } from 'vitest';
import { buildCapaReply, parseCapa, type CapaView } from '../../../src/protocol/capa.ts';
import { TerminatorScanner, unstuffLines } from '../../../src/protocol/multiline.ts';

const ALL_VERBS = new Set(['CAPA', 'USER', 'PASS', 'APOP', 'AUTH', 'STLS', 'STAT', 'LIST', 'UIDL', 'TOP', 'RETR', 'DELE', 'NOOP', 'RSET', 'QUIT', 'UTF8']);

const DOVECOT = parseCapa([
  'CAPA',
  'TOP',
  'UIDL',
  'RESP-CODES',
  'PIPELINING',
  'AUTH-RESP-CODE',
  'STLS',
  'USER',
  'SASL PLAIN LOGIN',
  'UTF8',
]);

function view(overrides: Partial<CapaView>): CapaView {
  return {
    backend: DOVECOT,
    stls: false,
    user: false,
    sasl: [],
    allowedVerbs: ALL_VERBS,
    implementation: null,
    phase: 'authorization',
    ...overrides,
  };
}

/** The capability lines of a built reply, checked to be a well-formed multi-line reply first. */
function linesOf(reply: string): string[] {
  expect(reply.startsWith('+OK Capability list follows\r\n')).toBe(true);
  expect(reply.endsWith('\r\n.\r\n')).toBe(true);
  const body = Buffer.from(reply, 'latin1');
  const statusEnd = reply.indexOf('\r\n') + 2;
  const scanner = new TerminatorScanner();
  scanner.reset();
  expect(scanner.scan(body, statusEnd)).toBe(body.length);
  return unstuffLines(body.subarray(statusEnd, body.length - 3));
}

describe('parseCapa', () => {
  it('reads keywords case-insensitively, SASL mechanisms, IMPLEMENTATION and PIPELINING', () => {
    const capa = parseCapa(['top', 'Sasl plain  xoauth2', 'IMPLEMENTATION Shlemazle Plotz v302', 'PIPELINING', 'EXPIRE 60 USER']);
    expect(capa.has('TOP')).toBe(true);
    expect(capa.has('top')).toBe(true);
    expect(capa.has('UIDL')).toBe(false);
    expect(capa.has('EXPIRE')).toBe(true);
    expect(capa.sasl).toEqual(['PLAIN', 'XOAUTH2']);
    expect(capa.implementation).toBe('Shlemazle Plotz v302');
    expect(capa.pipelining).toBe(true);
    expect(capa.lines).toEqual(['top', 'Sasl plain  xoauth2', 'IMPLEMENTATION Shlemazle Plotz v302', 'PIPELINING', 'EXPIRE 60 USER']);
  });

  it('reports no SASL, no implementation and no pipelining for an empty list', () => {
    const capa = parseCapa([]);
    expect(capa.sasl).toEqual([]);
    expect(capa.implementation).toBeNull();
    expect(capa.pipelining).toBe(false);
    expect(capa.has('')).toBe(false);
  });
});

describe('buildCapaReply', () => {
  it('passes safe backend capabilities and replaces STLS, USER and SASL with the view', () => {
    const reply = buildCapaReply(view({ stls: true, user: true, sasl: ['PLAIN'] }));
    expect(linesOf(reply)).toEqual(['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'UTF8', 'PIPELINING', 'STLS', 'USER', 'SASL PLAIN']);
  });

  it('never relays the backend STLS, STARTTLS, SASL, USER or IMPLEMENTATION lines', () => {
    const backend = parseCapa(['STLS', 'STARTTLS', 'SASL GSSAPI', 'USER', 'IMPLEMENTATION Secret-Server 1.2', 'TOP']);
    expect(linesOf(buildCapaReply(view({ backend })))).toEqual(['TOP', 'PIPELINING']);
  });

  it('drops unknown and vendor capabilities', () => {
    const backend = parseCapa(['X-DEBUG-SHELL', 'LANG', 'XTND XMIT', 'SASL-IR', 'CAPA', 'UIDL']);
    expect(linesOf(buildCapaReply(view({ backend })))).toEqual(['UIDL', 'PIPELINING']);
  });

  it('always advertises PIPELINING because the gateway queues commands itself', () => {
    expect(linesOf(buildCapaReply(view({ backend: parseCapa([]) })))).toEqual(['PIPELINING']);
  });

  it('relays EXPIRE and LOGIN-DELAY with their per-phase arguments', () => {
    const backend = parseCapa(['EXPIRE 31 USER', 'LOGIN-DELAY 900', 'top']);
    expect(linesOf(buildCapaReply(view({ backend, phase: 'transaction' })))).toEqual(['EXPIRE 31 USER', 'LOGIN-DELAY 900', 'TOP', 'PIPELINING']);
  });

  it('drops capabilities whose verb policy forbids', () => {
    const allowedVerbs = new Set(['CAPA', 'STAT', 'LIST', 'RETR', 'QUIT', 'PASS']);
    const reply = buildCapaReply(view({ allowedVerbs, stls: true, user: true, sasl: ['PLAIN'] }));
    expect(linesOf(reply)).toEqual(['RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING']);
  });

  it('does not advertise USER when PASS is forbidden', () => {
    const allowedVerbs = new Set([...ALL_VERBS].filter((v) => v !== 'PASS'));
    expect(linesOf(buildCapaReply(view({ allowedVerbs, user: true })))).not.toContain('USER');
  });

  it('omits STLS after login, where RFC 2595 makes it invalid', () => {
    expect(linesOf(buildCapaReply(view({ stls: true, phase: 'transaction' })))).not.toContain('STLS');
  });

  it('synthesizes a list when the backend has no CAPA', () => {
    const reply = buildCapaReply(view({ backend: null, stls: true, user: true, sasl: ['PLAIN', 'LOGIN'] }));
    expect(linesOf(reply)).toEqual(['TOP', 'UIDL', 'PIPELINING', 'STLS', 'USER', 'SASL PLAIN LOGIN']);
  });

  it('never promises response codes for a backend without CAPA: its -ERR lines are relayed as they are', () => {
    const lines = linesOf(buildCapaReply(view({ backend: null, stls: true, user: true, sasl: ['PLAIN'] })));
    expect(lines).not.toContain('RESP-CODES');
    expect(lines).not.toContain('AUTH-RESP-CODE');
  });

  it('advertises RESP-CODES and AUTH-RESP-CODE exactly when the backend does', () => {
    expect(linesOf(buildCapaReply(view({ backend: parseCapa(['TOP', 'UIDL']) })))).toEqual(['TOP', 'UIDL', 'PIPELINING']);
    expect(linesOf(buildCapaReply(view({ backend: parseCapa(['RESP-CODES', 'AUTH-RESP-CODE']) }))))
      .toEqual(['RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING']);
  });

  it('synthesizes TOP and UIDL only when policy allows them', () => {
    const allowedVerbs = new Set([...ALL_VERBS].filter((v) => v !== 'TOP' && v !== 'UIDL'));
    expect(linesOf(buildCapaReply(view({ backend: null, allowedVerbs })))).toEqual(['PIPELINING']);
  });

  it('writes the IMPLEMENTATION line from the view, without control characters', () => {
    expect(linesOf(buildCapaReply(view({ backend: null, implementation: 'pop3-gateway\r\nSTLS' })))).toContain(
      'IMPLEMENTATION pop3-gatewaySTLS',
    );
    expect(linesOf(buildCapaReply(view({ backend: null, implementation: '  ' })))).not.toContain('IMPLEMENTATION');
  });

  it('refuses SASL mechanism names that would corrupt the line', () => {
    const reply = buildCapaReply(view({ sasl: ['plain', 'BAD NAME', 'X\r\nSTLS', 'XOAUTH2'] }));
    expect(linesOf(reply)).toContain('SASL PLAIN XOAUTH2');
    expect(linesOf(buildCapaReply(view({ sasl: ['\r\n'] })))).not.toContain('SASL');
  });

  it('relays a backend capability line only once', () => {
    const backend = parseCapa(['TOP', 'top', 'RESP-CODES', 'RESP-CODES']);
    expect(linesOf(buildCapaReply(view({ backend })))).toEqual(['TOP', 'RESP-CODES', 'PIPELINING']);
  });

  it('strips control characters from relayed arguments', () => {
    const backend = parseCapa(['EXPIRE 31\x1b[2J']);
    expect(linesOf(buildCapaReply(view({ backend })))).toEqual(['EXPIRE 31[2J', 'PIPELINING']);
  });

  it('ends with exactly one terminator line', () => {
    const reply = buildCapaReply(view({ backend: null }));
    expect(reply).toBe('+OK Capability list follows\r\nTOP\r\nUIDL\r\nPIPELINING\r\n.\r\n');
  });
});
