/**
 * Reads a PROXY protocol v1/v2 header off a fresh connection before anything
 * else; bytes after the header go back to the socket for TLS or the session.
 */
import type { Socket } from 'node:net';
import { parseProxyHeader, type ProxyAddress } from '../protocol/proxy-header.ts';

export type ProxyHeaderResult =
  | { ok: true; source: ProxyAddress | null; destination: ProxyAddress | null }
  | { ok: false; reason: string };

/** v2 headers are 16 bytes plus at most 64 KiB of TLVs; refuse anything longer. */
const MAX_HEADER = 16 + 65535;

export function readProxyHeader(raw: Socket, timeoutMs: number): Promise<ProxyHeaderResult> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    const finish = (r: ProxyHeaderResult, rest?: Buffer): void => {
      clearTimeout(timer);
      raw.off('data', onData);
      raw.off('close', onClose);
      raw.pause();
      if (rest !== undefined && rest.length > 0) raw.unshift(rest);
      resolve(r);
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const p = parseProxyHeader(buf);
      if (p.status === 'more') {
        if (buf.length > MAX_HEADER) finish({ ok: false, reason: 'header too long' });
        return;
      }
      if (p.status === 'invalid') {
        finish({ ok: false, reason: p.reason });
        return;
      }
      const { info } = p;
      const addressed = info.command === 'PROXY' && info.family !== 'UNKNOWN';
      finish({ ok: true, source: addressed ? info.source : null, destination: addressed ? info.destination : null }, buf.subarray(p.length));
    };
    const onClose = (): void => finish({ ok: false, reason: 'closed before the header' });
    const timer = setTimeout(() => finish({ ok: false, reason: 'no header in time' }), timeoutMs);
    raw.on('data', onData);
    raw.once('close', onClose);
  });
}
