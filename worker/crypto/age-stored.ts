/**
 * Where age meets verify and restore: the decrypting stage a manifest asks for, and the check
 * that is still possible without an identity (the stored bytes against the manifest).
 */
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { ConfigError, IntegrityError } from '../../core/errors.js';
import { openStoredObject } from '../stored-object.js';
import type { Manifest } from '../manifest.js';
import type { Store } from '../stores/store.js';
import { AGE_TRANSFORM, AgeDecryptStream, Sha256Meter, type AgeIdentities } from './age.js';

/** An age snapshot and no identity to read it with. */
export class MissingIdentityError extends ConfigError {}

export function isAge(manifest: Pick<Manifest, 'transforms' | 'age'>): boolean {
  return manifest.transforms.includes(AGE_TRANSFORM) || manifest.age !== undefined;
}

/**
 * The age decrypting stage `manifest` needs, or undefined for a snapshot that is not an age file.
 * Fails before any download when no identity is configured.
 */
export function ageDecryptStage(
  manifest: Pick<Manifest, 'transforms' | 'age'>,
  identities: AgeIdentities | undefined,
  what: string,
): AgeDecryptStream | undefined {
  if (!isAge(manifest)) return undefined;
  const recorded = manifest.age;
  if (!recorded || !manifest.transforms.includes(AGE_TRANSFORM)) {
    throw new IntegrityError(
      `${what} has an inconsistent manifest: age is ${recorded ? 'described but not listed in its transforms' : 'listed in its transforms but not described'}`,
    );
  }
  // recorded.format is the one literal the manifest schema accepts, so any other was refused at parse.
  if (!identities) {
    throw new MissingIdentityError(
      `${what} is age-encrypted to ${recorded.recipients.join(', ')}; give an identity of one of them with --identity FILE (encryption.identityFiles)`,
    );
  }
  return new AgeDecryptStream(identities);
}

export interface StoredCheck {
  storedSize: number;
  storedSha256: string;
}

/**
 * Without an identity: downloads the object and checks its size and SHA-256 against the manifest.
 * This proves the stored bytes are the ones written, not that they decrypt or restore.
 */
export async function checkStoredBytes(store: Store, manifest: Manifest, signal?: AbortSignal): Promise<StoredCheck> {
  const what = `snapshot ${manifest.id} (${manifest.key} in ${store.location})`;
  const object = await openStoredObject(store, manifest, what);
  const hash = new Sha256Meter();
  const sink = new Writable({ write: (_c: Buffer, _e, done) => done() });
  await pipeline([object.body, hash, sink], signal ? { signal } : {});
  const storedSha256 = hash.digest();
  if (hash.bytes !== manifest.storedSize) {
    throw new IntegrityError(`${what} gave ${hash.bytes} bytes but its manifest says ${manifest.storedSize}`);
  }
  if (manifest.storedSha256 !== undefined && storedSha256 !== manifest.storedSha256) {
    throw new IntegrityError(
      `${what} does not match its manifest: the stored bytes hash to ${storedSha256} but the manifest says ${manifest.storedSha256}`,
    );
  }
  return { storedSize: hash.bytes, storedSha256 };
}
