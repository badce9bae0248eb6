import { describe, expect, it } from 'vitest';
import { PendingQueue, type PendingEntry } from '../../../src/session/pending.ts';

function entry(kind: PendingEntry['kind'], verb: string): PendingEntry {
  return { kind, verb, args: [], wire: kind === 'local' ? null : Buffer.from(`${verb}\r\n`), localReply: kind === 'local' ? '+OK' : null,
    multiline: false, startedAt: 0, sent: kind === 'local' };
}

/** What a sender would send now, marking each sent. */
function sendAll(q: PendingQueue): string[] {
  const out: string[] = [];
  for (let e = q.nextUnsent(); e !== undefined; e = q.nextUnsent()) {
    e.sent = true;
    out.push(e.verb);
  }
  return out;
}

describe('PendingQueue.nextUnsent', () => {
  it('hands out backend-bound entries once each, in order, skipping the gateway\'s own replies', () => {
    const q = new PendingQueue();
    q.push(entry('relay', 'STAT'));
    q.push(entry('local', 'CAPA'));
    q.push(entry('internal', 'UIDL'));
    expect(sendAll(q)).toEqual(['STAT', 'UIDL']);
    expect(sendAll(q)).toEqual([]);
    q.push(entry('relay', 'RETR'));
    expect(q.inFlight).toBe(true);
    expect(sendAll(q)).toEqual(['RETR']);
  });

  it('stays in order across many shifts, the queue compacting itself, and a clear', () => {
    const q = new PendingQueue();
    const sent: string[] = [];
    for (let i = 0; i < 300; i++) {
      q.push(entry('relay', `C${i}`));
      if (i % 3 === 0) q.push(entry('local', `L${i}`));
      if (i % 2 === 0) sent.push(...sendAll(q));
      while (q.length > 5) q.shift();
    }
    sent.push(...sendAll(q));
    const expected = Array.from({ length: 300 }, (_, i) => `C${i}`);
    // Entries shifted before they were sent are gone; the rest went out once each, in order.
    expect(sent).toEqual(expected.filter((v) => sent.includes(v)));
    expect(new Set(sent).size).toBe(sent.length);
    q.clear();
    q.push(entry('relay', 'NOOP'));
    expect(sendAll(q)).toEqual(['NOOP']);
  });
});
