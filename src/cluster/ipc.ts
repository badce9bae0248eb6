/**
 * Request/response and one-way notes over the node:cluster IPC channel, used the same way
 * on both sides (the primary holds one peer per worker). Messages are JSON (cluster's
 * default serialization), so a `Secret` crosses only as "[redacted]" (its toJSON), never
 * as its value. Each request has an id and a deadline; a late answer is dropped.
 * Messages without our tag are left alone (other users of the channel).
 *
 * Everything posted within one turn of the event loop leaves as one channel message (in
 * order): a login's four lock look-ups, or many sessions' audit records under load, cost
 * one send and one parse instead of one each. That is the main cost of the channel.
 */

export const TAG = 'pop3gw-cluster-1';

type Envelope =
  | { tag: typeof TAG; kind: 'req'; id: number; type: string; body: unknown }
  | { tag: typeof TAG; kind: 'res'; id: number; ok: true; body: unknown }
  | { tag: typeof TAG; kind: 'res'; id: number; ok: false; error: string }
  | { tag: typeof TAG; kind: 'note'; type: string; body: unknown };

type Batch = { tag: typeof TAG; kind: 'batch'; items: Envelope[] };

export type IpcErrorCode = 'IPC_TIMEOUT' | 'IPC_CLOSED' | 'IPC_REMOTE' | 'IPC_NO_HANDLER';

export class IpcError extends Error {
  constructor(readonly code: IpcErrorCode, message: string) {
    super(message);
    this.name = 'IpcError';
  }
}

/** Sends one message; the callback gets the channel's error, if any. */
export type IpcSend = (message: unknown, done: (err: Error | null) => void) => void;

type Handler = (body: unknown) => unknown;

interface Pending {
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class IpcPeer {
  readonly #send: IpcSend;
  readonly #handlers = new Map<string, Handler>();
  readonly #notes = new Map<string, (body: unknown) => void>();
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed: string | null = null;
  #outbox: Array<{ message: Envelope; onError: (err: Error) => void }> = [];

  constructor(send: IpcSend) {
    this.#send = send;
  }

  /** Answers requests of `type`; a thrown error (or rejection) goes back as the request's error. */
  handle(type: string, fn: Handler): this {
    this.#handlers.set(type, fn);
    return this;
  }

  onNote(type: string, fn: (body: unknown) => void): this {
    this.#notes.set(type, fn);
    return this;
  }

  /** Rejects with IpcError IPC_TIMEOUT after `timeoutMs`, IPC_CLOSED when the channel goes. */
  request<T>(type: string, body: unknown, timeoutMs: number): Promise<T> {
    if (this.#closed !== null) return Promise.reject(new IpcError('IPC_CLOSED', `cannot send ${type}: ${this.#closed}`));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new IpcError('IPC_TIMEOUT', `no answer to ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.#post({ tag: TAG, kind: 'req', id, type, body }, (err) => this.#settle(id, new IpcError('IPC_CLOSED', `cannot send ${type}: ${err.message}`)));
    });
  }

  /** A one-way message; lost silently if the channel is gone (the caller has a fallback or does not care). */
  notify(type: string, body: unknown): void {
    if (this.#closed !== null) return;
    this.#post({ tag: TAG, kind: 'note', type, body }, () => undefined);
  }

  get pending(): number {
    return this.#pending.size;
  }

  /** Feeds one received message; false when it is not ours. */
  receive(message: unknown): boolean {
    if (!isEnvelope(message)) return false;
    if (message.kind === 'batch') {
      for (const item of message.items) this.receive(item);
    } else if (message.kind === 'res') {
      this.#settle(message.id, message.ok ? null : new IpcError('IPC_REMOTE', message.error), message.ok ? message.body : undefined);
    } else if (message.kind === 'note') {
      this.#notes.get(message.type)?.(message.body);
    } else {
      void this.#answer(message.id, message.type, message.body);
    }
    return true;
  }

  /** The channel is gone: every waiting request fails at once. */
  close(reason: string): void {
    if (this.#closed !== null) return;
    this.#closed = reason;
    for (const id of [...this.#pending.keys()]) this.#settle(id, new IpcError('IPC_CLOSED', reason));
  }

  async #answer(id: number, type: string, body: unknown): Promise<void> {
    const fn = this.#handlers.get(type);
    let reply: Envelope;
    if (fn === undefined) {
      reply = { tag: TAG, kind: 'res', id, ok: false, error: `no handler for ${type}` };
    } else {
      try {
        reply = { tag: TAG, kind: 'res', id, ok: true, body: (await fn(body)) ?? null };
      } catch (err) {
        reply = { tag: TAG, kind: 'res', id, ok: false, error: (err as Error).message ?? String(err) };
      }
    }
    if (this.#closed === null) this.#post(reply, () => undefined);
  }

  #settle(id: number, err: Error | null, body?: unknown): void {
    const p = this.#pending.get(id);
    if (p === undefined) return; // timed out already: a late answer is dropped
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (err !== null) p.reject(err);
    else p.resolve(body);
  }

  #post(message: Envelope, onError: (err: Error) => void): void {
    this.#outbox.push({ message, onError });
    if (this.#outbox.length === 1) setImmediate(() => this.#flush());
  }

  #flush(): void {
    const items = this.#outbox;
    this.#outbox = [];
    if (items.length === 0) return;
    const failed = (err: Error): void => {
      for (const i of items) i.onError(err);
    };
    const message: Envelope | Batch = items.length === 1 ? items[0]!.message : { tag: TAG, kind: 'batch', items: items.map((i) => i.message) };
    try {
      this.#send(message, (err) => {
        if (err !== null) failed(err);
      });
    } catch (err) {
      failed(err as Error);
    }
  }
}

function isEnvelope(m: unknown): m is Envelope | Batch {
  return typeof m === 'object' && m !== null && (m as { tag?: unknown }).tag === TAG;
}
