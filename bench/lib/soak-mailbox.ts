/**
 * The soak's mailboxes: random messages written into Dovecot's maildirs, then
 * read back from Dovecot directly (no gateway) to learn each message number's
 * size, unique-id and bytes. What the gateway later relays is compared with
 * this, and the first reading must match the files byte for byte.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import type { DovecotInstance } from '../../test/harness/dovecot.ts';
import { randomMessage, type Rng } from './mailbox.ts';
import { RawPop3, unstuff, type Endpoint } from './raw-pop3.ts';

export interface ExpectedMessage {
  n: number;
  octets: number;
  uid: string;
  sha256: string;
  content: Buffer;
}

export interface ExpectedMailbox {
  user: string;
  password: string;
  messages: ExpectedMessage[];
  totalOctets: number;
  /** The multi-line LIST and UIDL bodies as Dovecot sends them (dot-stuffed, without ".\r\n"). */
  listBody: string;
  uidlBody: string;
}

export const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

/** Sizes spread evenly on a log scale between 1 KiB and 2 MiB. */
function randomSize(rng: Rng): number {
  return Math.round(1024 * 2 ** (rng.next() * 11));
}

export function fillMailbox(dc: DovecotInstance, user: string, count: number, rng: Rng): Buffer[] {
  const written: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const msg = randomMessage(rng, randomSize(rng), `${user}-${i}`);
    dc.addMessage(user, msg);
    written.push(msg);
  }
  return written;
}

/** TOP n k as RFC 1939 defines it: the header, the blank line, then the first k body lines. */
export function expectedTop(content: Buffer, k: number): Buffer {
  const sep = content.indexOf('\r\n\r\n');
  if (sep < 0) return content;
  let pos = sep + 4;
  for (let i = 0; i < k && pos < content.length; i++) {
    const lf = content.indexOf(0x0a, pos);
    pos = lf < 0 ? content.length : lf + 1;
  }
  return content.subarray(0, pos);
}

/** Reads every message from Dovecot directly and checks it against what was written. */
export async function learnMailbox(ep: Endpoint, user: string, password: string, written: Buffer[]): Promise<ExpectedMailbox> {
  const byHash = new Map(written.map((b) => [sha256(b), b]));
  const c = await RawPop3.connect(ep);
  try {
    await c.login(user, password);
    const list = await c.multiline('LIST', true);
    const uidl = await c.multiline('UIDL', true);
    const listBody = list.body?.body?.toString('latin1') ?? '';
    const uidlBody = uidl.body?.body?.toString('latin1') ?? '';
    const uids = new Map(uidlBody.split('\r\n').filter((l) => l !== '').map((l) => l.split(' ') as [string, string]));
    const messages: ExpectedMessage[] = [];
    for (const line of listBody.split('\r\n').filter((l) => l !== '')) {
      const [ns, size] = line.split(' ');
      const n = Number(ns);
      const r = await c.multiline(`RETR ${n}`, true);
      if (r.body?.body == null) throw new Error(`direct RETR ${n} for ${user}: ${r.status}`);
      const content = unstuff(r.body.body);
      const hash = sha256(content);
      if (!byHash.has(hash)) throw new Error(`direct RETR ${n} for ${user} matches no message the soak wrote (${content.length} bytes)`);
      if (content.length !== Number(size)) throw new Error(`LIST says ${size} octets for ${user} #${n}, RETR gave ${content.length}`);
      messages.push({ n, octets: content.length, uid: uids.get(ns!) ?? '', sha256: hash, content });
    }
    if (messages.length !== written.length) throw new Error(`${user}: Dovecot lists ${messages.length} messages, the soak wrote ${written.length}`);
    // Our reading of TOP must agree with Dovecot's before it can judge the gateway's.
    for (const m of messages.slice(0, 5)) {
      for (const k of [0, 1, 7]) {
        const r = await c.multiline(`TOP ${m.n} ${k}`, true);
        const got = r.body?.body == null ? null : unstuff(r.body.body);
        if (got === null || !got.equals(expectedTop(m.content, k))) throw new Error(`direct TOP ${m.n} ${k} for ${user} differs from the soak's expectation`);
      }
    }
    await c.quit();
    return { user, password, messages, totalOctets: messages.reduce((a, m) => a + m.octets, 0), listBody, uidlBody };
  } finally {
    c.destroy();
  }
}

/** Maildir file names without the ":2,flags" suffix, so a move from new/ to cur/ is no change. */
export function mailboxFileNames(dc: DovecotInstance, user: string): string[] {
  return dc.messageFiles(user).map((f) => path.basename(f).replace(/:2,.*$/, '')).sort();
}
