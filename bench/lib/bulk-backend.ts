/**
 * The backend the cost-hunting tools measure against: a real Dovecot with one big message for
 * alice (bulk relay) and one small one for bob (sessions), and a test certificate for the
 * proxies in front of it. `onDovecot` runs as soon as Dovecot is up, so the caller's run scope
 * can stop it whatever happens next.
 */
import { makeCert, type CertFiles } from '../../test/harness/certs.ts';
import { startDovecot, type DovecotInstance } from '../../test/harness/dovecot.ts';
import { bulkMessage } from './mailbox.ts';

export interface BulkBackend {
  readonly dovecot: DovecotInstance;
  readonly cert: CertFiles;
  /** How a client reaches an implicit-TLS proxy on `port` that presents `cert`. */
  endpoint(port: number): { host: string; port: number; tls: 'implicit'; ca: string; servername: string };
}

export async function startBulkBackend(mib: number, onDovecot: (dc: DovecotInstance) => void): Promise<BulkBackend> {
  const dovecot = await startDovecot();
  onDovecot(dovecot);
  dovecot.addMessage('alice', bulkMessage(mib * 1024 * 1024, 'big'));
  dovecot.addMessage('bob', 'Subject: hi\r\n\r\nHello.\r\n');
  const cert = await makeCert({ commonName: 'localhost' });
  return {
    dovecot,
    cert,
    endpoint: (port) => ({ host: '127.0.0.1', port, tls: 'implicit', ca: cert.caPem, servername: 'localhost' }),
  };
}
