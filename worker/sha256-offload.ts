/**
 * The SHA-256 of the bytes passing through, computed in a worker thread so that hashing a large
 * object does not sit on the main thread beside the gRPC stream, the cipher and the upload. The
 * bytes are copied into a few fixed staging buffers that are transferred (not copied again) to the
 * worker and handed back once hashed: memory stays at `buffers` x `bufferBytes` whatever the size,
 * and when every buffer is at the worker the stream waits (backpressure). An object that ends
 * before the first buffer fills is hashed inline and starts no thread (delta-log segments).
 * A failure of the worker fails the stream, so the pipeline fails and nothing is published.
 */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';

export interface OffloadedSha256Options {
  /**
   * Size of one staging buffer, bytes; also the size below which no thread starts.
   * @defaultValue 1 MiB
   */
  bufferBytes?: number;
  /**
   * Staging buffers in all (at the worker or filling).
   * @defaultValue 4
   */
  buffers?: number;
}

/** Runs in the thread: hashes each buffer it gets, hands it back, and answers `end` with the digest. */
const THREAD_CODE = `
const { parentPort } = require('node:worker_threads');
const hash = require('node:crypto').createHash('sha256');
parentPort.on('message', (m) => {
  if (m.end) {
    parentPort.postMessage({ digest: hash.digest('hex') });
    return;
  }
  hash.update(new Uint8Array(m.buffer, 0, m.length));
  parentPort.postMessage({ buffer: m.buffer }, [m.buffer]);
});
`;

type FromThread = { buffer: ArrayBuffer } | { digest: string };

export class OffloadedSha256 extends Transform {
  /** Bytes seen so far. */
  bytes = 0;
  /** Whether a worker thread was started (the object outgrew one buffer). */
  threaded = false;
  private readonly bufferBytes: number;
  private readonly free: ArrayBuffer[] = [];
  private filling: Uint8Array;
  private filled = 0;
  /** `filling` was sent; a buffer must come back (or be allocated) before more bytes are staged. */
  private sent = false;
  /** Buffers not yet allocated. */
  private spare: number;
  private thread: Worker | undefined;
  private failed: Error | undefined;
  /** Waiting for a buffer to come back, or for the digest. */
  private waiting: (() => void) | undefined;
  private result: string | undefined;

  constructor(options: OffloadedSha256Options = {}) {
    super();
    this.bufferBytes = options.bufferBytes ?? 1024 * 1024;
    const count = Math.max(2, options.buffers ?? 4);
    // Allocated as they are first needed: a small object uses one.
    this.filling = new Uint8Array(this.bufferBytes);
    this.spare = count - 1;
  }

  /** The hex digest; available once the stream has finished without error. */
  digest(): string {
    if (this.result === undefined) throw new Error('stored bytes not hashed yet');
    return this.result;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    // Passed on at once: the hash never delays the bytes, only (when behind) the next chunk.
    this.push(chunk);
    this.stage(chunk, 0, done);
  }

  override _flush(done: TransformCallback): void {
    if (this.failed) return done(this.failed);
    if (!this.thread) {
      this.result = createHash('sha256').update(this.filling.subarray(0, this.filled)).digest('hex');
      return done();
    }
    if (this.filled > 0) this.send();
    // Buffers still coming back wake this too; only the digest (or a failure) ends it.
    const finish = (): void => {
      if (this.failed) return done(this.failed);
      if (this.result === undefined) {
        this.waiting = finish;
        return;
      }
      this.stop();
      done();
    };
    this.waiting = finish;
    (this.thread as Worker).postMessage({ end: true });
  }

  override _destroy(err: Error | null, done: (error: Error | null) => void): void {
    this.stop();
    done(err);
  }

  /** Copies `chunk` from `offset` into the staging buffers, sending each that fills. */
  private stage(chunk: Buffer, offset: number, done: TransformCallback): void {
    while (offset < chunk.length) {
      if (this.failed) return done(this.failed);
      if (this.sent && !this.nextBuffer()) {
        this.waiting = () => this.stage(chunk, offset, done);
        return;
      }
      const n = Math.min(chunk.length - offset, this.bufferBytes - this.filled);
      this.filling.set(chunk.subarray(offset, offset + n), this.filled);
      this.filled += n;
      offset += n;
      if (this.filled === this.bufferBytes) this.send();
    }
    done();
  }

  private nextBuffer(): boolean {
    const back = this.free.pop();
    if (back) this.filling = new Uint8Array(back);
    else if (this.spare > 0) {
      this.spare--;
      this.filling = new Uint8Array(this.bufferBytes);
    } else return false;
    this.filled = 0;
    this.sent = false;
    return true;
  }

  private send(): void {
    const thread = this.thread ?? this.start();
    const buffer = this.filling.buffer as ArrayBuffer;
    thread.postMessage({ buffer, length: this.filled }, [buffer]);
    this.filled = 0;
    this.sent = true;
  }

  private start(): Worker {
    this.threaded = true;
    // No execArgv: the thread needs neither a TypeScript loader nor the parent's flags.
    const thread = new Worker(THREAD_CODE, { eval: true, execArgv: [] });
    thread.on('message', (m: FromThread) => {
      if ('digest' in m) this.result = m.digest;
      else this.free.push(m.buffer);
      this.wake();
    });
    thread.on('error', (err) => this.fail(err));
    thread.on('exit', (code) => {
      if (this.result === undefined) this.fail(new Error(`the hashing thread exited (code ${code}) before the digest`));
    });
    this.thread = thread;
    return thread;
  }

  private fail(err: Error): void {
    this.failed ??= new Error(`hashing the stored bytes failed: ${err.message}`, { cause: err });
    this.wake();
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.();
  }

  private stop(): void {
    const thread = this.thread;
    this.thread = undefined;
    if (thread) {
      thread.removeAllListeners('exit');
      void thread.terminate();
    }
  }
}
