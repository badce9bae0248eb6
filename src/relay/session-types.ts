/** The shapes other modules see of a session (admin views, close reasons, send options). */

export interface SendOptions {
  wire?: Buffer;
  multiline?: boolean;
  sasl?: boolean;
  onBody?: ((slice: Buffer) => void) | undefined;
}

export type CloseReason =
  | 'quit' | 'client-closed' | 'client-error' | 'idle-timeout' | 'auth-timeout' | 'backend-timeout'
  | 'backend-closed' | 'backend-error' | 'protocol-violation' | 'too-many-invalid' | 'too-many-failures'
  | 'kicked' | 'shutdown' | 'internal-error' | 'tls-failed';

export interface SessionSnapshot {
  id: string; user: string | null; client: string; listener: string; tls: string | false;
  since: string; bytesIn: number; bytesOut: number; lastCommand: string | null; state: string;
}
