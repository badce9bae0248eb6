/**
 * Reads the backend's replies during the connect phase only (greeting, CAPA, STLS); afterwards
 * the relay owns the socket.
 *
 * It pulls with 'readable' + read() rather than 'data': once detached, the socket is left
 * neither flowing nor explicitly paused, so bytes that arrive before the relay attaches its own
 * 'data' listener wait in the socket instead of being emitted to nobody, and that listener still
 * starts the flow by itself.
 */
import type { Socket } from 'node:net';
import { LineDecoder } from '../protocol/line-decoder.ts';
import { unstuffLines } from '../protocol/multiline.ts';
import { parseStatus, type StatusLine } from '../protocol/response.ts';
import { step, type Cancellation } from './deadline.ts';
import { BackendError } from './errors.ts';

export interface ReaderLimits {
  /** Longest status or body line, CRLF included (limits.responseLine). */
  readonly lineMax: number;
  /** Largest multi-line body (CAPA) this reader accepts. */
  readonly bodyMax: number;
}

export interface StatusReply {
  readonly status: StatusLine;
  /** The raw line without CRLF (latin1 bytes as received). */
  readonly line: Buffer;
}

const CRLF = Buffer.from('\r\n', 'latin1');
const DOT = 0x2e;

export class ReplyReader {
  private readonly decoder: LineDecoder;
  private wake: (() => void) | null = null;
  private closed = false;
  private failure: Error | null = null;
  private detached = false;

  constructor(private readonly socket: Socket, private readonly limits: ReaderLimits, private readonly server: string) {
    this.decoder = new LineDecoder(limits.lineMax);
    socket.on('readable', this.onReadable);
    socket.on('end', this.onClosed);
    socket.on('close', this.onClosed);
    socket.on('error', this.onError);
  }

  private readonly onReadable = (): void => {
    let chunk: Buffer | null;
    while ((chunk = this.socket.read() as Buffer | null) !== null) this.decoder.feed(chunk);
    this.wake?.();
  };

  private readonly onClosed = (): void => {
    this.closed = true;
    this.wake?.();
  };

  private readonly onError = (err: Error): void => {
    this.failure = err;
    this.wake?.();
  };

  /** One status line: +OK, -ERR or a continuation; anything else is a PROTOCOL error. */
  readStatus(what: string, timeoutMs: number, signal?: Cancellation): Promise<StatusReply> {
    return this.pull(what, timeoutMs, signal, () => {
      const line = this.nextLine(what);
      if (line === null) return null;
      const status = parseStatus(line);
      if (status === null) {
        throw new BackendError('PROTOCOL', `${what} is not a POP3 status line`, { server: this.server });
      }
      return { status, line };
    });
  }

  /** The lines of a multi-line body after a +OK, up to the "." line, un-stuffed (latin1). */
  readBody(what: string, timeoutMs: number, signal?: Cancellation): Promise<string[]> {
    const lines: Buffer[] = [];
    let size = 0;
    return this.pull(what, timeoutMs, signal, () => {
      for (;;) {
        const line = this.nextLine(what);
        if (line === null) return null;
        if (line.length === 1 && line[0] === DOT) {
          return unstuffLines(Buffer.concat(lines.flatMap((l) => [l, CRLF])));
        }
        size += line.length + 2;
        if (size > this.limits.bodyMax) {
          throw new BackendError('PROTOCOL', `${what} is larger than ${this.limits.bodyMax} bytes`, { server: this.server });
        }
        lines.push(Buffer.from(line)); // the decoder may hand out views of chunks it reuses
      }
    });
  }

  /**
   * Stops reading and returns every byte received beyond the replies consumed so far. For STLS
   * the caller discards them: plaintext sent with the STLS reply must never reach the session.
   */
  detach(): Buffer {
    if (!this.detached) {
      this.detached = true;
      this.socket.off('readable', this.onReadable);
      this.socket.off('end', this.onClosed);
      this.socket.off('close', this.onClosed);
      this.socket.off('error', this.onError);
      let chunk: Buffer | null;
      while ((chunk = this.socket.read() as Buffer | null) !== null) this.decoder.feed(chunk);
    }
    return this.decoder.takeBuffered();
  }

  private nextLine(what: string): Buffer | null {
    const event = this.decoder.next();
    if (event === null) return null;
    if (event.type === 'overflow') {
      throw new BackendError('PROTOCOL', `a line of ${what} is longer than ${this.limits.lineMax} bytes`, { server: this.server });
    }
    return event.line;
  }

  /** Runs `attempt` now and on every new input until it returns a value, throws, or time runs out. */
  private pull<T>(what: string, timeoutMs: number, signal: Cancellation | undefined, attempt: () => T | null): Promise<T> {
    return step<T>({ timeoutMs, signal, server: this.server, what }, (resolve, reject) => {
      const tryNow = (): void => {
        try {
          const value = attempt();
          if (value !== null) return resolve(value);
        } catch (err) {
          return reject(err as Error);
        }
        if (this.failure !== null) {
          reject(new BackendError('CLOSED', `connection failed while waiting for ${what}: ${this.failure.message}`,
            { server: this.server, cause: this.failure }));
        } else if (this.closed) {
          reject(new BackendError('CLOSED', `connection closed while waiting for ${what}`, { server: this.server }));
        }
      };
      this.wake = tryNow;
      tryNow();
      return () => {
        this.wake = null;
      };
    });
  }
}
