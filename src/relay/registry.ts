/** Live sessions, for /sessions, kick and graceful shutdown. */
import type { Pop3Session, SessionSnapshot } from './session.ts';

export class SessionRegistry {
  private readonly sessions = new Map<string, Pop3Session>();

  add(s: Pop3Session): void {
    this.sessions.set(s.id, s);
    s.whenClosed(() => this.sessions.delete(s.id));
  }

  get size(): number {
    return this.sessions.size;
  }

  list(): SessionSnapshot[] {
    return [...this.sessions.values()].map((s) => s.snapshot());
  }

  kick(id: string): boolean {
    const s = this.sessions.get(id);
    if (s === undefined) return false;
    s.kick('kicked');
    return true;
  }

  /** Resolves when every session has ended, or after `ms`, whichever is first; true if all ended. */
  async drain(ms: number): Promise<boolean> {
    if (this.sessions.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const all = Promise.all([...this.sessions.values()].map((s) => s.closed)).then(() => true);
    const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
    const done = await Promise.race([all, late]);
    clearTimeout(timer);
    return done;
  }

  closeAll(): void {
    for (const s of this.sessions.values()) s.kick('shutdown');
  }
}
