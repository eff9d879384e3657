/**
 * Snapshots as the worker publishes them (real naming, object then manifest), with placeholder
 * sizes and hash: for tests of what reads the store's manifests (catalog, retention, prune).
 */
import { Readable } from 'node:stream';
import { manifestKey, objectKey, MANIFEST_FORMAT, type Manifest } from '../../worker/manifest.js';
import type { Store } from '../../worker/stores/store.js';
import { DELTA_FORMAT, segmentObjectKey, type DeltaManifest } from '../../worker/delta/segment.js';

export function fakeManifest(
  cluster: string,
  id: string,
  createdAt: string,
  revision: number,
  extra: Partial<Manifest> = {},
): Manifest {
  return {
    format: MANIFEST_FORMAT,
    id,
    cluster,
    key: objectKey(cluster, id, 'gzip'),
    createdAt,
    durationMs: 1,
    etcd: {
      endpoint: 'http://127.0.0.1:2379',
      memberId: '1',
      clusterId: '2',
      isLeader: true,
      version: '3.4.23',
      revision,
    },
    dbSize: 1,
    snapshotSize: 33,
    storedSize: 4,
    sha256: '0'.repeat(64),
    compression: 'gzip',
    transforms: ['verify-sha256', 'gzip'],
    cause: { source: 'manual' },
    tool: { name: 'etcd-autobackup', version: '0.0.0' },
    ...extra,
  };
}

/** Writes the snapshot's object (unless `withObject` is false) and then its manifest. */
export async function publishFake(store: Store, m: Manifest, withObject = true): Promise<void> {
  if (withObject) await store.put(m.key, Readable.from([Buffer.from('data')]));
  await store.put(manifestKey(m.cluster, m.id), Readable.from([JSON.stringify(m)]));
}

/**
 * A delta-log segment manifest with placeholder sizes and hashes, for the pure tests of what reads
 * the log (chains, start point, restore targets). Events are received at `at(revision)`.
 */
export function fakeDeltaManifest(
  first: number,
  last: number,
  chain: { follows: string; startRevision: number },
  at: (revision: number) => string,
): DeltaManifest {
  return {
    format: DELTA_FORMAT,
    cluster: 'c',
    key: segmentObjectKey('c', first, last, 'zstd', false),
    firstRevision: first,
    lastRevision: last,
    eventCount: last - first + 1,
    firstEventAt: at(first),
    lastEventAt: at(last),
    createdAt: at(last),
    chain,
    bodySize: 1,
    sha256: '0'.repeat(64),
    storedSize: 1,
    storedSha256: '0'.repeat(64),
    compression: 'zstd',
    transforms: ['zstd'],
    etcd: { endpoint: 'http://127.0.0.1:2379', memberId: '1', clusterId: '2', version: '3.4.30' },
    tool: { name: 'etcd-autobackup', version: 'test' },
  };
}
