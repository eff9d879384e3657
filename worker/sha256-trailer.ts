/**
 * etcd appends the SHA-256 of the database to the snapshot stream (32 bytes). This transform
 * passes every byte through unchanged (the stored object keeps the trailer, as
 * `etcdctl snapshot restore` expects), hashes all but the last 32 on the fly, and fails the
 * stream at its end when the trailer does not match, so that nothing gets published.
 */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError } from '../core/errors.js';

export const TRAILER_SIZE = 32;

export interface TrailerFacts {
  /** Hex SHA-256 of the database (the stream without its trailer). */
  sha256: string;
  /** Size of the database without the trailer. */
  dbSize: number;
}

export class Sha256TrailerVerifier extends Transform {
  private readonly hash = createHash('sha256');
  /** The last bytes seen, which may turn out to be the trailer. */
  private tail: Buffer = Buffer.alloc(0);
  private hashed = 0;
  private facts: TrailerFacts | undefined;

  /** Facts about the verified database; available once the stream has ended without error. */
  result(): TrailerFacts {
    if (!this.facts) throw new Error('snapshot stream not verified yet');
    return this.facts;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    // Hash what can no longer be part of the trailer without copying the chunk: the held tail
    // (or its front part) and then all of the chunk but its last 32 bytes.
    const total = this.tail.length + chunk.length;
    const hashable = total - TRAILER_SIZE;
    if (hashable > 0) {
      const fromTail = Math.min(hashable, this.tail.length);
      if (fromTail > 0) this.hash.update(this.tail.subarray(0, fromTail));
      const fromChunk = hashable - fromTail;
      if (fromChunk > 0) this.hash.update(chunk.subarray(0, fromChunk));
      this.hashed += hashable;
      const keepFromTail = this.tail.subarray(fromTail);
      // Copy the 32 kept bytes: the chunk belongs to the next stream stage from here on.
      this.tail = Buffer.concat([keepFromTail, chunk.subarray(fromChunk)], TRAILER_SIZE);
    } else {
      this.tail = Buffer.concat([this.tail, chunk]);
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    if (this.tail.length < TRAILER_SIZE) {
      done(
        new IntegrityError(`snapshot stream too short (${this.hashed + this.tail.length} bytes): no SHA-256 trailer`),
      );
      return;
    }
    const digest = this.hash.digest();
    if (!digest.equals(this.tail)) {
      done(
        new IntegrityError(
          `SHA-256 mismatch: the database hashes to ${digest.toString('hex')} but the snapshot trailer says ${this.tail.toString('hex')}`,
        ),
      );
      return;
    }
    this.facts = { sha256: digest.toString('hex'), dbSize: this.hashed };
    done();
  }
}
