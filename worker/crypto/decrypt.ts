/**
 * The decrypting stage of verify and restore. It passes on plaintext only once its chunk has been
 * authenticated, buffers at most one chunk, and fails the stream, naming what is wrong, when the
 * object was altered, reordered, cut short or appended to.
 */
import { createDecipheriv } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ConfigError } from '../../core/errors.js';
import { ByteQueue } from './byte-queue.js';
import {
  aadFor,
  DecryptionError,
  FLAG_FINAL,
  FLAG_MORE,
  FRAME_HEADER_BYTES,
  HEADER_BYTES,
  nonceFor,
  parseHeader,
  TAG_BYTES,
  type Header,
} from './format.js';
import type { KeyRing } from './keys.js';

/** The object was encrypted with a key that is not configured. */
export class UnknownKeyError extends ConfigError {}

export function unknownKeyMessage(keyId: string, keys: KeyRing): string {
  const configured = keys.ids.length > 0 ? `the configured keys are ${keys.ids.join(', ')}` : 'no key is configured';
  return (
    `it is encrypted with key id ${keyId} and ${configured}; give that key with --encryption-key-file ` +
    '(encryption.keyFile) or, when it is an older key, --decryption-key-files (encryption.decryptionKeyFiles)'
  );
}

export interface DecryptOptions {
  /** The key id the manifest records: a header naming another one was swapped in. */
  expectKeyId?: string;
}

export class DecryptStream extends Transform {
  /** Most ciphertext bytes held at once, to show memory stays flat. */
  peakBuffered = 0;
  private readonly pending = new ByteQueue();
  private header: Header | undefined;
  private key: Buffer | undefined;
  private index = 0n;
  /** The frame whose body is awaited. */
  private frame: { flags: number; length: number } | undefined;
  private finished = false;
  /** Ciphertext bytes consumed so far, for error messages that say where. */
  private offset = 0;

  constructor(
    private readonly keys: KeyRing,
    private readonly options: DecryptOptions = {},
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.finished) {
      done(
        new DecryptionError(`${chunk.length}+ bytes follow the final chunk at byte ${this.offset}: data was appended`),
      );
      return;
    }
    this.pending.push(chunk);
    this.peakBuffered = Math.max(this.peakBuffered, this.pending.length);
    try {
      this.drain();
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    if (!this.header) {
      done(
        new DecryptionError(
          `it ends inside the encryption header (${this.pending.length} of ${HEADER_BYTES} bytes): the object is truncated or not encrypted`,
        ),
      );
    } else if (this.frame || this.pending.length > 0) {
      done(
        new DecryptionError(
          `it ends inside chunk ${this.index} (byte ${this.offset + this.pending.length}): the object is truncated`,
        ),
      );
    } else if (!this.finished) {
      done(
        new DecryptionError(
          this.index === 0n
            ? 'it ends right after the header, before any chunk: the object is truncated'
            : `it ends after chunk ${this.index - 1n} without the final-chunk marker: the object is truncated (chunks were cut off)`,
        ),
      );
    } else {
      done();
    }
  }

  private drain(): void {
    for (;;) {
      if (!this.header) {
        if (this.pending.length < HEADER_BYTES) return;
        this.openHeader(this.pending.take(HEADER_BYTES));
        this.offset += HEADER_BYTES;
        continue;
      }
      if (this.finished) {
        if (this.pending.length > 0)
          throw new DecryptionError(
            `${this.pending.length}+ bytes follow the final chunk at byte ${this.offset}: data was appended`,
          );
        return;
      }
      if (!this.frame) {
        if (this.pending.length < FRAME_HEADER_BYTES) return;
        const raw = this.pending.take(FRAME_HEADER_BYTES);
        this.frame = this.checkFrame(raw.readUInt8(0), raw.readUInt32BE(1), this.header);
        this.offset += FRAME_HEADER_BYTES;
      }
      const sealed = this.frame.length + TAG_BYTES;
      if (this.pending.length < sealed) return;
      this.open(this.pending.take(sealed), this.frame.flags);
      this.offset += sealed;
      this.frame = undefined;
    }
  }

  private openHeader(raw: Buffer): void {
    const header = parseHeader(raw);
    const expected = this.options.expectKeyId;
    if (expected !== undefined && header.keyId !== expected) {
      throw new DecryptionError(
        `its header names key id ${header.keyId} but the manifest says ${expected}: the object was replaced or altered`,
      );
    }
    const master = this.keys.get(header.keyId);
    if (!master) throw new UnknownKeyError(unknownKeyMessage(header.keyId, this.keys));
    this.key = master.objectKey(header.salt);
    this.header = header;
  }

  private checkFrame(flags: number, length: number, header: Header): { flags: number; length: number } {
    const at = `chunk ${this.index} (byte ${this.offset})`;
    if (flags !== FLAG_MORE && flags !== FLAG_FINAL)
      throw new DecryptionError(`${at} has an invalid flags byte ${flags}: the object was altered`);
    if (length > header.chunkBytes) {
      throw new DecryptionError(
        `${at} declares ${length} bytes, more than the chunk size ${header.chunkBytes}: the object was altered`,
      );
    }
    // The writer fills every chunk but the last, so a short middle chunk can only be tampering.
    if (flags === FLAG_MORE && length !== header.chunkBytes) {
      throw new DecryptionError(
        `${at} is not the last but holds ${length} of ${header.chunkBytes} bytes: the object was altered`,
      );
    }
    return { flags, length };
  }

  private open(sealed: Buffer, flags: number): void {
    const header = this.header as Header;
    const decipher = createDecipheriv('aes-256-gcm', this.key as Buffer, nonceFor(this.index));
    decipher.setAAD(aadFor(header, this.index, flags));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const body = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
    try {
      decipher.final();
    } catch {
      throw new DecryptionError(
        `chunk ${this.index} (byte ${this.offset - FRAME_HEADER_BYTES}) fails authentication: the object was altered, its chunks reordered or dropped, or the key is not the one it was written with`,
      );
    }
    this.index++;
    if (flags === FLAG_FINAL) this.finished = true;
    if (body.length > 0) this.push(body);
  }
}
