/**
 * The encrypting stage of the backup pipeline: plaintext in, the format of format.ts out. It holds
 * at most one chunk plus the piece that completed it, whatever the size of the stream.
 */
import { createCipheriv } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ByteQueue } from './byte-queue.js';
import {
  aadFor,
  DEFAULT_CHUNK_BYTES,
  FLAG_FINAL,
  FLAG_MORE,
  FRAME_HEADER_BYTES,
  newHeader,
  nonceFor,
  type Header,
} from './format.js';
import type { MasterKey } from './keys.js';

export interface EncryptOptions {
  /** Plaintext bytes per chunk (tests use small ones to get many chunks). */
  chunkBytes?: number;
  /** The per-object salt; random unless a test fixes it. */
  salt?: Buffer;
}

export class EncryptStream extends Transform {
  readonly keyId: string;
  readonly chunkBytes: number;
  /** Most plaintext bytes held at once, to show memory stays flat. */
  peakBuffered = 0;
  private readonly header: Header;
  private readonly key: Buffer;
  private readonly pending = new ByteQueue();
  private index = 0n;
  private headerSent = false;

  constructor(master: MasterKey, options: EncryptOptions = {}) {
    super();
    this.chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.header = newHeader(master.id, this.chunkBytes, options.salt);
    this.keyId = master.id;
    this.key = master.objectKey(this.header.salt);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.sendHeader();
    this.pending.push(chunk);
    this.peakBuffered = Math.max(this.peakBuffered, this.pending.length);
    // Strictly more than a chunk: only then is it certain that this chunk is not the last.
    while (this.pending.length > this.chunkBytes) this.seal(this.pending.takePieces(this.chunkBytes), FLAG_MORE);
    done();
  }

  override _flush(done: TransformCallback): void {
    this.sendHeader();
    // Always a final chunk, even an empty one: its flag is what proves the stream was not cut short.
    this.seal(this.pending.takePieces(this.pending.length), FLAG_FINAL);
    done();
  }

  private sendHeader(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    this.push(this.header.raw);
  }

  private seal(plain: Buffer[], flags: number): void {
    const cipher = createCipheriv('aes-256-gcm', this.key, nonceFor(this.index));
    cipher.setAAD(aadFor(this.header, this.index, flags));
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    frame.writeUInt8(flags, 0);
    frame.writeUInt32BE(
      plain.reduce((n, p) => n + p.length, 0),
      1,
    );
    this.push(frame);
    // The chunk's pieces as they came, each pushed as it is encrypted: joining them first, then
    // the frame, allocated the chunk twice more (age.ts does the same).
    for (const piece of plain) this.push(cipher.update(piece));
    const rest = cipher.final();
    this.push(rest.length > 0 ? Buffer.concat([rest, cipher.getAuthTag()]) : cipher.getAuthTag());
    this.index++;
  }
}
