/**
 * Opening a snapshot's stored object for reading back, once for verify and for the no-identity
 * check of age objects: a missing object and one whose size disagrees with its manifest are
 * integrity failures, named for the operator, before a byte is read.
 */
import type { Readable } from 'node:stream';
import { IntegrityError, messageOf } from '../core/errors.js';
import type { Manifest } from './manifest.js';
import { NotFoundError, type Store } from './stores/store.js';

export async function openStoredObject(
  store: Store,
  manifest: Pick<Manifest, 'key' | 'storedSize'>,
  what: string,
): Promise<{ body: Readable; size: number }> {
  let object: { body: Readable; size: number };
  try {
    object = await store.get(manifest.key);
  } catch (err) {
    if (err instanceof NotFoundError)
      throw new IntegrityError(`${what} is missing: its manifest exists but the object does not`);
    throw new Error(`reading ${what} failed: ${messageOf(err)}`, { cause: err });
  }
  if (object.size !== manifest.storedSize) {
    object.body.destroy();
    throw new IntegrityError(
      `${what} is ${object.size} bytes but its manifest says ${manifest.storedSize}: the object is truncated or was replaced`,
    );
  }
  return object;
}
