/**
 * Small helpers shared by the store tests.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { createLogger } from '../../core/logger.js';
import { takeBackup, type BackupOptions } from '../../worker/backup.js';
import { manifestKey, parseManifest, type Manifest } from '../../worker/manifest.js';
import type { Store } from '../../worker/stores/store.js';
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

/**
 * takeBackup (gzip) into `store`, then what every provider must show of it: exactly the object and
 * its manifest listed, the manifest read back as written, the object `storedSize` bytes that
 * gunzip to `snapshotSize` bytes with the manifest's sha256. Returns the manifest and the snapshot.
 */
export async function backupAndReadBack(
  config: BackupOptions['config'],
  store: Store,
): Promise<{ manifest: Manifest; snapshot: Buffer }> {
  const manifest = await takeBackup({
    config,
    store,
    log: createLogger({ level: 'warn' }),
    cause: { source: 'manual' },
  });
  const mKey = manifestKey(config.cluster, manifest.id);
  assert.deepEqual((await store.list('')).map((o) => o.key).sort(), [manifest.key, mKey].sort());
  assert.deepEqual(parseManifest((await readAll((await store.get(mKey)).body)).toString('utf8'), mKey), manifest);
  const stored = await readAll((await store.get(manifest.key)).body);
  assert.equal(stored.length, manifest.storedSize);
  const snapshot = gunzipSync(stored);
  assert.equal(snapshot.length, manifest.snapshotSize);
  assert.equal(sha256(snapshot.subarray(0, manifest.dbSize)), manifest.sha256);
  return { manifest, snapshot };
}
