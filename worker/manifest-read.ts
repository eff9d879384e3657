/**
 * Reading a manifest back from a store, once for every reader (catalog, prune, the Job executor):
 * absent, unreadable and unusable are three different answers, and prune acts differently on each.
 */
import type { Readable } from 'node:stream';
import { messageOf } from '../core/errors.js';
import { parseManifest, type Manifest } from './manifest.js';
import { NotFoundError, toBuffer, type Store } from './stores/store.js';

/** The store failed while the manifest was fetched or read (not: it is absent). */
export class ManifestReadError extends Error {
  override readonly name = 'ManifestReadError';
}

/**
 * The manifest at `key`. Rejects with the store's NotFoundError when it is absent, a ManifestReadError
 * (the store's message, the store's error as cause) when it could not be fetched or read to its end,
 * and parseManifest's error when it is there but unusable.
 */
export async function readManifest(store: Store, key: string): Promise<Manifest> {
  return parseManifest(await readStoredText(store, key), key);
}

/**
 * A small object's text (manifests, records). Rejects with the store's NotFoundError when it is
 * absent and a ManifestReadError when it could not be fetched or read to its end.
 */
export async function readStoredText(store: Store, key: string): Promise<string> {
  let body: Readable;
  try {
    ({ body } = await store.get(key));
  } catch (err) {
    if (err instanceof NotFoundError) throw err;
    throw new ManifestReadError(messageOf(err), { cause: err });
  }
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of body) chunks.push(toBuffer(chunk));
  } catch (err) {
    throw new ManifestReadError(messageOf(err), { cause: err });
  }
  return Buffer.concat(chunks).toString('utf8');
}
