/**
 * Snapshot naming and the manifest that travels beside every object. Names sort by time and sit
 * under a per-cluster prefix, so several clusters can share one bucket:
 *
 *   <cluster>/snapshots/20261124T032800Z-r12345-a1b2.db.zst   (.db.gz for gzip, .db for none)
 *   <cluster>/snapshots/20261124T032800Z-r12345-a1b2.manifest.json
 *
 * An AES-GCM encrypted object keeps the same name; its manifest's `encryption` field says it is
 * encrypted. An age object is a standard age file and ends in `.age` (`….db.gz.age`), as age's
 * own tools expect; its manifest's `age` field names the recipients.
 *
 * The manifest is written after the object: a snapshot exists for readers only once its manifest
 * does, which makes publishing atomic on every provider.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { causeSchema } from '../core/cause.js';
import { CODEC_NAMES, codecOf } from './codecs.js';

export const MANIFEST_FORMAT = 'etcd-autobackup/v1';
export const MANIFEST_SUFFIX = '.manifest.json';

/** The `encryption` field of snapshot and delta-log manifests (AES-GCM, docs/encryption.md). */
export const encryptionFieldSchema = z.object({
  /** Version of the stream format, e.g. "etcd-autobackup-enc/1". */
  format: z.string(),
  algorithm: z.string(),
  /** Hex id of the key that encrypted the object (see keyIdOf). */
  keyId: z.string().regex(/^[0-9a-f]{16}$/),
  /** Plaintext bytes per chunk. */
  chunkSize: z.number().int().positive(),
});

/** The `age` field of snapshot and delta-log manifests (a standard age file). */
export const ageFieldSchema = z.object({
  format: z.literal('age-encryption.org/v1'),
  recipients: z.array(z.string()).min(1),
});

export const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  id: z.string(),
  cluster: z.string(),
  /** Key of the snapshot object, relative to the store's base prefix. */
  key: z.string(),
  createdAt: z.string(),
  durationMs: z.number(),
  etcd: z.object({
    endpoint: z.string(),
    memberId: z.string(),
    clusterId: z.string(),
    isLeader: z.boolean(),
    version: z.string(),
    /** Revision seen just before the stream started; the snapshot holds at least this revision. */
    revision: z.number(),
  }),
  /** Database bytes, without etcd's 32-byte SHA-256 trailer. */
  dbSize: z.number(),
  /** Bytes of the snapshot as etcd sent it (database plus trailer): what `etcdctl snapshot restore` reads. */
  snapshotSize: z.number(),
  /** Bytes of the stored object after compression (and encryption). */
  storedSize: z.number(),
  /** Hex SHA-256 of the database, as verified against etcd's trailer. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** The codec (worker/codecs.ts); readers decode by it, never by the object's name. */
  compression: z.enum(CODEC_NAMES),
  /** The stream stages in order, e.g. ["verify-sha256", "zstd", "encrypt-aes-256-gcm"]. */
  transforms: z.array(z.string()),
  /**
   * Present when the object is encrypted (docs/encryption.md). Names the key by its id, never the
   * key itself; manifests written before encryption existed have no such field.
   */
  encryption: encryptionFieldSchema.optional(),
  /**
   * Present when the object is a standard age file (transform "age", name ending in `.age`). The
   * recipients are public keys; whoever holds one of their identities can decrypt.
   */
  age: ageFieldSchema.optional(),
  /** Hex SHA-256 of the stored bytes, so that verify can check an age object without an identity. */
  storedSha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  // --- drills (docs/drills.md): facts about the source taken right after the stream; older manifests lack them.
  /** The source member's HashKV at `etcd.revision`, asked right after the snapshot stream ended. */
  hashKV: z
    .object({
      revision: z.number(),
      hash: z.number(),
      compactRevision: z.number(),
      /** The member's revision when it answered: equal to `revision` means nothing was written during the stream. */
      currentRevision: z.number(),
    })
    .optional(),
  /** Keys per top-level prefix at `etcd.revision` (key-counts.ts). */
  keyCounts: z
    .object({
      revision: z.number(),
      method: z.literal('walk-prefixes'),
      requests: z.number(),
      truncated: z.boolean(),
      total: z.number(),
      prefixes: z.record(z.string(), z.number()),
    })
    .optional(),
  // --- end drills
  cause: causeSchema,
  tool: z.object({ name: z.string(), version: z.string() }),
});

export type Manifest = z.infer<typeof manifestSchema>;

export function snapshotsPrefix(cluster: string): string {
  return `${cluster}/snapshots/`;
}

export function newSnapshotId(
  at: Date,
  revision: number,
  random: () => string = () => randomBytes(2).toString('hex'),
): string {
  const stamp = at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${stamp}-r${revision}-${random()}`;
}

export function objectKey(cluster: string, id: string, compression: Manifest['compression']): string {
  return `${snapshotsPrefix(cluster)}${id}.db${codecOf(compression).extension}`;
}

export function manifestKey(cluster: string, id: string): string {
  return `${snapshotsPrefix(cluster)}${id}${MANIFEST_SUFFIX}`;
}

export function parseManifest(text: string, key: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`manifest ${key} is not JSON`);
  }
  const result = manifestSchema.safeParse(json);
  if (!result.success) {
    throw new Error(
      `manifest ${key} is not an ${MANIFEST_FORMAT} manifest: ${result.error.issues[0]?.message ?? 'invalid'}`,
    );
  }
  return result.data;
}
