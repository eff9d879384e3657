/**
 * The snapshots a store holds for one cluster. A snapshot exists only once its manifest does (see
 * manifest.ts), so the catalog reads manifests and never guesses from object names: an object
 * without a manifest is a partial or unpublished upload, not a backup anyone should restore.
 */
import { messageOf } from '../core/errors.js';
import { readManifest } from './manifest-read.js';
import { manifestKey, snapshotsPrefix, MANIFEST_SUFFIX, type Manifest } from './manifest.js';
import { NotFoundError, type Store } from './stores/store.js';
import { mapLimit } from './map-limit.js';

/** What `verify` and `restore` accept besides an id. */
export const LATEST = 'latest';

/** The id names no published snapshot; says how to find the ids. */
export class SnapshotNotFoundError extends Error {
  override readonly name = 'SnapshotNotFoundError';
}

export interface ListOptions {
  /** Manifests read at once: enough to hide per-request latency on object stores, few enough to be polite. */
  concurrency?: number;
  /** Called for each manifest that cannot be used (unreadable, invalid, or its object is gone). */
  onInvalid?: (key: string, problem: string) => void;
}

/** Every published snapshot of `cluster`, newest first. */
export async function listSnapshots(store: Store, cluster: string, options: ListOptions = {}): Promise<Manifest[]> {
  const objects = await store.list(snapshotsPrefix(cluster));
  const present = new Set(objects.map((o) => o.key));
  const manifestKeys = objects.map((o) => o.key).filter((k) => k.endsWith(MANIFEST_SUFFIX));

  const read = await mapLimit(manifestKeys, options.concurrency ?? 8, async (key) => {
    try {
      return { key, manifest: await readManifest(store, key) };
    } catch (err) {
      return { key, problem: messageOf(err) };
    }
  });

  const manifests: Manifest[] = [];
  for (const r of read) {
    let problem = r.problem;
    if (r.manifest && r.manifest.cluster !== cluster)
      problem = `belongs to cluster "${r.manifest.cluster}", not "${cluster}"`;
    else if (r.manifest && !present.has(r.manifest.key)) problem = `its snapshot object ${r.manifest.key} is missing`;
    if (problem !== undefined || !r.manifest) options.onInvalid?.(r.key, problem ?? 'unreadable');
    else manifests.push(r.manifest);
  }
  return manifests.sort(newestFirst);
}

/** The manifest of `id` (or of the newest snapshot for `latest`). */
export async function findSnapshot(
  store: Store,
  cluster: string,
  id: string,
  options: ListOptions = {},
): Promise<Manifest> {
  const howToList = `run "etcd-autobackup list" (with the same --store and --cluster) to see the snapshot ids`;
  if (id === LATEST) {
    const [newest] = await listSnapshots(store, cluster, options);
    if (!newest) {
      throw new SnapshotNotFoundError(
        `no snapshots of cluster "${cluster}" in ${store.location} yet; take one with "etcd-autobackup snapshot" or check --store and --cluster`,
      );
    }
    return newest;
  }
  // Ids are generated as <time>-r<revision>-<hex>; anything with a separator would address another key.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) {
    throw new SnapshotNotFoundError(
      `"${id}" is not a snapshot id (ids look like 20261124T032800Z-r12345-a1b2); ${howToList}`,
    );
  }
  try {
    const manifest = await readManifest(store, manifestKey(cluster, id));
    if (manifest.cluster !== cluster || manifest.id !== id) {
      throw new Error(`manifest of ${id} describes ${manifest.cluster}/${manifest.id}`);
    }
    return manifest;
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new SnapshotNotFoundError(`no snapshot "${id}" of cluster "${cluster}" in ${store.location}; ${howToList}`);
    }
    throw err;
  }
}

function newestFirst(a: Manifest, b: Manifest): number {
  // Ids start with the UTC time and then the revision, so they break ties between equal times.
  return b.createdAt.localeCompare(a.createdAt) || b.etcd.revision - a.etcd.revision || b.id.localeCompare(a.id);
}
