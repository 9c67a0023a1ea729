import { createHash, type Hash } from 'node:crypto';

/**
 * Where the guest's console output goes: one ordered byte stream fed by every console
 * device (debug port 0xE9 and COM1), kept whole, hashed incrementally, and handed to an
 * optional listener in chunks when `flush` is called (the machine flushes after each run
 * slice, so a CLI can stream it without a call per byte).
 */
export class ConsoleSink {
  private buf = new Uint8Array(4096);
  private len = 0;
  private flushed = 0;
  private readonly hash: Hash = createHash('sha256');
  /** Receives output in order; called from `flush`. */
  listener: ((chunk: Uint8Array) => void) | null = null;

  /** Appends one byte. */
  write(byte: number): void {
    if (this.len === this.buf.length) {
      const next = new Uint8Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.len++] = byte;
  }

  /** Number of bytes written so far. */
  get length(): number { return this.len; }

  /** A copy of everything written so far. */
  bytes(): Uint8Array { return this.buf.slice(0, this.len); }

  /** Everything written so far, decoded as latin-1 (one char per byte; for tests and messages). */
  text(): string { return Buffer.from(this.buf.buffer, 0, this.len).toString('latin1'); }

  /** Hands bytes written since the last flush to the listener and to the running hash. */
  flush(): void {
    if (this.flushed === this.len) return;
    const chunk = this.buf.subarray(this.flushed, this.len);
    this.hash.update(chunk);
    this.flushed = this.len;
    if (this.listener) this.listener(chunk.slice());
  }

  /** SHA-256 (hex) of all output so far; flushes first. */
  sha256(): string {
    this.flush();
    return this.hash.copy().digest('hex');
  }
}
