/**
 * OCI API keys for tests: an RSA key pair written as a PEM file, with the OCIDs and fingerprint a
 * user would copy from the console, and the store.oci block that uses them.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ociSchema } from '../../core/config/schema.js';
import type { OciConfig } from '../../worker/stores/oci-auth.js';
import { ociFingerprint } from '../../worker/stores/oci-auth.js';

export interface TestApiKey {
  tenancy: string;
  user: string;
  fingerprint: string;
  publicKey: KeyObject;
  privateKey: KeyObject;
  /** The private key as PEM in a file. */
  keyFile: string;
}

let counter = 0;

/** A fresh key pair under `dir`; encrypted with `passphrase` when given. */
export async function makeApiKey(
  dir: string,
  options: { passphrase?: string; tenancy?: string; user?: string } = {},
): Promise<TestApiKey> {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const n = ++counter;
  const keyFile = join(dir, `oci_api_key_${n}.pem`);
  const pem = options.passphrase
    ? privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: options.passphrase })
    : privateKey.export({ type: 'pkcs8', format: 'pem' });
  await writeFile(keyFile, pem, { mode: 0o600 });
  return {
    tenancy: options.tenancy ?? 'ocid1.tenancy.oc1..aaaatesttenancy',
    user: options.user ?? `ocid1.user.oc1..aaaatestuser${n}`,
    fingerprint: ociFingerprint(publicKey),
    publicKey,
    privateKey,
    keyFile,
  };
}

/** store.oci for API-key auth with `key` against `endpoint`, schema defaults applied. */
export function ociConfigFor(key: TestApiKey, endpoint: string, extra: Partial<OciConfig> = {}): OciConfig {
  return ociSchema.parse({
    tenancy: key.tenancy,
    user: key.user,
    fingerprint: key.fingerprint,
    privateKeyFile: key.keyFile,
    endpoint,
    region: 'us-ashburn-1',
    ...extra,
  });
}
