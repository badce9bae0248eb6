/**
 * Every reply the gateway writes by itself, with its RFC 2449/3206 response code.
 * Only data: the session picks a key, the writer appends CRLF.
 */
export const REPLIES = {
  greeting: '+OK POP3 gateway ready.',
  userAccepted: '+OK Send your password.',
  authFailed: '-ERR [AUTH] Authentication failed.',
  stlsFirst: '-ERR [AUTH] Plaintext authentication disallowed on non-secure connections: use STLS first.',
  stlsBegin: '+OK Begin TLS negotiation now.',
  stlsUnavailable: '-ERR STLS not available here.',
  stlsAlreadyActive: '-ERR TLS is already active.',
  notAllowed: '-ERR Command not permitted by policy.',
  unknownCommand: '-ERR Unknown command.',
  badSyntax: '-ERR Syntax error in command.',
  lineTooLong: '-ERR Line too long.',
  badState: '-ERR Command not valid in this state.',
  passWithoutUser: '-ERR Send USER first.',
  alreadyLoggedIn: '-ERR Already authenticated.',
  mechanismUnsupported: '-ERR Unsupported authentication mechanism.',
  authCancelled: '-ERR Authentication cancelled.',
  badBase64: '-ERR Invalid base64 data.',
  apopUnavailable: '-ERR APOP not available.',
  backendUnavailable: '-ERR [SYS/TEMP] Mail server temporarily unavailable, try again later.',
  backendTimeout: '-ERR [SYS/TEMP] Mail server did not answer in time.',
  backendProtocol: '-ERR [SYS/TEMP] Mail server protocol error.',
  tooManyConnections: '-ERR [SYS/TEMP] Too many connections, try again later.',
  tooManyConnectionsFromIp: '-ERR [SYS/TEMP] Too many connections from your address, try again later.',
  tooManyInvalid: '-ERR Too many invalid commands, closing connection.',
  idleTimeout: '-ERR Idle timeout, closing connection.',
  authTimeout: '-ERR Authentication timeout, closing connection.',
  kicked: '-ERR [SYS/TEMP] Session terminated by administrator.',
  shuttingDown: '-ERR [SYS/TEMP] Server shutting down, try again later.',
  messageLimit: '-ERR Retrieval limit for this session reached.',
  internalError: '-ERR [SYS/TEMP] Internal gateway error, closing connection.',
  quitBeforeLogin: '+OK Bye.',
  noop: '+OK',
} as const;

export type ReplyKey = keyof typeof REPLIES;
