import type { TestGateway } from './gateway.ts';

type AuditLine = Record<string, unknown>;

/**
 * The audit file is written asynchronously (pino destination), so a record may land a moment
 * after the client saw the reply. Polls until at least `count` lines match, then returns them.
 */
export async function waitForAudit(
  gw: Pick<TestGateway, 'auditLines'>,
  predicate: (line: AuditLine) => boolean,
  { count = 1, timeoutMs = 5000 }: { count?: number; timeoutMs?: number } = {},
): Promise<AuditLine[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const lines = gw.auditLines();
    const hits = lines.filter(predicate);
    if (hits.length >= count) return hits;
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${count} matching audit line(s), found ${hits.length}; audit: ${JSON.stringify(lines.slice(-20))}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}
