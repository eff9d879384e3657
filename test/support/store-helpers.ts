/**
 * Small helpers shared by the store tests.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { s3Schema, type S3Config } from '../../core/config/schema.js';
import { S3RVER_CREDENTIALS } from './s3rver.js';

/** Store options for s3rver at `endpoint`, as a user would write them, schema defaults applied. */
export function s3rverConfig(endpoint: string, extra: Partial<S3Config> = {}): S3Config {
  return s3Schema.parse({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    ...S3RVER_CREDENTIALS,
    partSizeMiB: 5,
    queueSize: 2,
    ...extra,
  });
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks);
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export const MIB = 1024 * 1024;

/** Random bytes in 64 KiB chunks, as a stream. */
export function randomStream(size: number): { stream: Readable; data: Buffer } {
  const data = randomBytes(size);
  const chunks: Buffer[] = [];
  for (let i = 0; i < size; i += 64 * 1024) chunks.push(data.subarray(i, Math.min(size, i + 64 * 1024)));
  return { stream: quiet(Readable.from(chunks, { objectMode: false })), data };
}

/**
 * A stream that sends `goodBytes` random bytes and then fails with `error`, after `beforeFailure`
 * has resolved (e.g. once the first part reached the server), the way a broken producer would.
 */
export function failingStream(
  goodBytes: number,
  error: Error,
  beforeFailure: () => Promise<void> = async () => {},
): Readable {
  return quiet(
    Readable.from(
      (async function* () {
        const chunk = 64 * 1024;
        for (let sent = 0; sent < goodBytes; sent += chunk) yield randomBytes(Math.min(chunk, goodBytes - sent));
        await beforeFailure();
        throw error;
      })(),
      { objectMode: false },
    ),
  );
}

/**
 * A store destroys a failed upload's input with the error, which would be an uncaught 'error'
 * event in a test that owns the stream; tests check `stream.errored` instead.
 */
export function quiet<S extends Readable>(stream: S): S {
  return stream.on('error', () => undefined);
}
