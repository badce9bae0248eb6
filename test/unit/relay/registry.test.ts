import { describe, expect, it } from 'vitest';
import { SessionRegistry } from '../../../src/relay/registry.ts';
import type { Pop3Session } from '../../../src/relay/session.ts';

/** What the registry uses of a session: its id, whenClosed/closed (as Pop3Session has them), kick. */
class FakeSession {
  private ended = false;
  private fns: (() => void)[] = [];
  kicked: string | null = null;
  constructor(readonly id: string) {}
  whenClosed(fn: () => void): void {
    if (this.ended) fn();
    else this.fns.push(fn);
  }
  get closed(): Promise<void> {
    return new Promise((r) => this.whenClosed(r));
  }
  kick(reason: string): void {
    this.kicked = reason;
  }
  end(): void {
    this.ended = true;
    for (const fn of this.fns.splice(0)) fn();
  }
}

const asSession = (f: FakeSession) => f as unknown as Pop3Session;

describe('SessionRegistry', () => {
  it('forgets a session as soon as it ends, in the same turn', () => {
    const r = new SessionRegistry();
    const a = new FakeSession('a');
    const b = new FakeSession('b');
    r.add(asSession(a));
    r.add(asSession(b));
    expect(r.size).toBe(2);
    a.end();
    expect(r.size).toBe(1);
    expect(r.kick('a')).toBe(false);
    expect(r.kick('b')).toBe(true);
    expect(b.kicked).toBe('kicked');
  });

  it('drains: true once every session has ended, false when the time runs out first', async () => {
    const r = new SessionRegistry();
    const a = new FakeSession('a');
    const b = new FakeSession('b');
    r.add(asSession(a));
    r.add(asSession(b));
    expect(await r.drain(30)).toBe(false);
    const drained = r.drain(5_000);
    a.end();
    b.end();
    expect(await drained).toBe(true);
    expect(r.size).toBe(0);
    expect(await r.drain(10)).toBe(true);
  });
});
