/**
 * Where encryption meets the backup and the read-back paths: which stage to add, and what the
 * manifest says about it.
 */
import { IntegrityError } from '../../core/errors.js';
import type { Manifest } from '../manifest.js';
import { DecryptStream, UnknownKeyError, unknownKeyMessage } from './decrypt.js';
import { EncryptStream, type EncryptOptions } from './encrypt.js';
import { ENCRYPT_TRANSFORM, ENCRYPTION_ALGORITHM, ENCRYPTION_FORMAT } from './format.js';
import { KeyRing, loadKeyRing, type EncryptionConfig } from './keys.js';

export type ManifestEncryption = NonNullable<Manifest['encryption']>;

export interface EncryptStage {
  stream: EncryptStream;
  transform: typeof ENCRYPT_TRANSFORM;
  manifest: ManifestEncryption;
}

/**
 * The encrypting stage when `encryption.keyFile` is set. The key file is read on every call, so a
 * rotated Kubernetes Secret takes effect at the next snapshot without a restart.
 */
export async function encryptStage(
  config: EncryptionConfig | undefined,
  options: EncryptOptions = {},
): Promise<EncryptStage | undefined> {
  if (!config?.keyFile) return undefined;
  const { writeKey } = await loadKeyRing({ keyFile: config.keyFile, decryptionKeyFiles: [] });
  if (!writeKey) return undefined;
  const stream = new EncryptStream(writeKey, options);
  return {
    stream,
    transform: ENCRYPT_TRANSFORM,
    manifest: {
      format: ENCRYPTION_FORMAT,
      algorithm: ENCRYPTION_ALGORITHM,
      keyId: writeKey.id,
      chunkSize: stream.chunkBytes,
    },
  };
}

/**
 * The decrypting stage a snapshot needs, or undefined for one stored in the clear. Fails before
 * anything is downloaded when the manifest names a key that is not configured. `what` names the
 * snapshot in errors.
 */
export function decryptStage(
  manifest: Pick<Manifest, 'encryption' | 'transforms'>,
  keys: KeyRing | undefined,
  what: string,
): DecryptStream | undefined {
  const recorded = manifest.encryption;
  const listed = manifest.transforms.includes(ENCRYPT_TRANSFORM);
  if (!recorded && !listed) return undefined;
  if (!recorded || !listed) {
    throw new IntegrityError(
      `${what} has an inconsistent manifest: encryption is ${recorded ? 'described' : 'listed in its transforms'} but ${recorded ? 'not listed in its transforms' : 'not described'}`,
    );
  }
  if (recorded.format !== ENCRYPTION_FORMAT) {
    throw new IntegrityError(
      `${what} was encrypted in format ${recorded.format}, which this version cannot read back; use a newer etcd-autobackup`,
    );
  }
  const ring = keys ?? KeyRing.empty;
  if (!ring.get(recorded.keyId)) {
    throw new UnknownKeyError(`${what} cannot be decrypted: ${unknownKeyMessage(recorded.keyId, ring)}`);
  }
  return new DecryptStream(ring, { expectKeyId: recorded.keyId });
}
