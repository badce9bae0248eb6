/**
 * Why a backend connection could not be set up, as a stable code (metrics label, log field, the
 * session's choice of reply) plus whether another pool server may do better.
 */

export type BackendErrorCode =
  /** TCP connect failed (refused, unreachable, DNS). */
  | 'CONNECT'
  /** A phase (connect, handshake, a reply) took longer than its timeout. */
  | 'TIMEOUT'
  /** TLS handshake or certificate verification failed, or the CA file is unusable. */
  | 'TLS'
  /** The greeting was -ERR (e.g. [SYS/TEMP], [IN-USE]). */
  | 'GREETING'
  /** `tls: starttls` but the backend does not offer or refuses STLS: never fall back to plaintext. */
  | 'NO_STLS'
  /** The backend said something that is not POP3 (garbage, an over-long line, an oversized CAPA). */
  | 'PROTOCOL'
  /** The connection closed or was reset mid-setup, or the client went away (abort). */
  | 'CLOSED'
  /** `tls: none` to a non-loopback backend without `allowPlaintextCredentials`. */
  | 'PLAINTEXT_CREDENTIALS';

/** The failures that say "this server, now", not "this configuration": try the next server. */
const RETRYABLE: ReadonlySet<BackendErrorCode> = new Set(['CONNECT', 'TIMEOUT', 'CLOSED']);

export interface BackendErrorOptions {
  /** "host:port" of the server. */
  readonly server?: string;
  /** An RFC 2449/3206 response code the backend gave, e.g. "SYS/TEMP" (GREETING, NO_STLS). */
  readonly responseCode?: string | null;
  readonly cause?: unknown;
}

export class BackendError extends Error {
  override readonly name = 'BackendError';
  readonly retryable: boolean;
  readonly server: string | null;
  readonly responseCode: string | null;

  constructor(readonly code: BackendErrorCode, message: string, options: BackendErrorOptions = {}) {
    super(options.server === undefined ? message : `${options.server}: ${message}`,
      options.cause === undefined ? undefined : { cause: options.cause });
    this.retryable = RETRYABLE.has(code);
    this.server = options.server ?? null;
    this.responseCode = options.responseCode ?? null;
  }
}

/** Any thrown value as a BackendError (unexpected ones become PROTOCOL, never retried). */
export function asBackendError(err: unknown, server?: string): BackendError {
  if (err instanceof BackendError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BackendError('PROTOCOL', `unexpected failure: ${message}`, { server, cause: err });
}
