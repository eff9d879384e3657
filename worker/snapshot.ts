/**
 * The etcd Maintenance.Snapshot stream as plain bytes. grpc-js reads the next message only when
 * this stream is read, so backpressure from storage slows the etcd read instead of filling memory.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Etcd3, ISnapshotResponse } from 'etcd3';
import { IntegrityError } from '../core/errors.js';
import { TRAILER_SIZE } from './sha256-trailer.js';

/** Turns snapshot messages into their blob bytes and checks the stream is as long as etcd announced. */
export class SnapshotMessages extends Transform {
  private received = 0;
  private expected: number | undefined;

  constructor(private readonly onExpected?: (total: number) => void) {
    super({ writableObjectMode: true, readableHighWaterMark: 256 * 1024 });
  }

  /**
   * Total bytes to expect: etcd's first message announces the database size, and the SHA-256
   * trailer follows as one more message that `remaining_bytes` does not count.
   */
  expectedBytes(): number | undefined {
    return this.expected;
  }

  override _transform(msg: ISnapshotResponse, _enc: BufferEncoding, done: TransformCallback): void {
    const blob = msg.blob;
    if (this.expected === undefined) {
      this.expected = blob.length + Number(msg.remaining_bytes) + TRAILER_SIZE;
      this.onExpected?.(this.expected);
    }
    this.received += blob.length;
    done(null, blob.length > 0 ? blob : undefined);
  }

  override _flush(done: TransformCallback): void {
    if (this.expected === undefined) {
      done(new IntegrityError('etcd ended the snapshot stream without sending any data'));
    } else if (this.received !== this.expected) {
      done(
        new IntegrityError(
          `snapshot stream ended early: got ${this.received} of ${this.expected} bytes (database plus 32-byte SHA-256 trailer)`,
        ),
      );
    } else {
      done();
    }
  }
}

/** Starts the snapshot on the member the client is connected to. */
export async function openSnapshotStream(client: Etcd3): Promise<Readable> {
  // etcd3 types the call as a minimal event emitter; at run time it is grpc-js's ClientReadableStream.
  const stream = (await client.maintenance.snapshot()) as unknown as Readable & { cancel?: () => void };
  // grpc-js does not cancel the call when its stream is destroyed: a failed or aborted snapshot
  // would keep the call, etcd's send and the connection open (and a stopping process alive).
  stream.once('close', () => {
    if (!stream.readableEnded) stream.cancel?.();
  });
  return stream;
}
