/**
 * The local OCI Object Storage (test/support/oci-server.ts, which verifies every request's
 * signature) in-process for the oci variants, with a fresh API key, and the flags that point our
 * runner at it.
 */
import { makeApiKey } from '../test/support/oci-keys.js';
import { startOciServer } from '../test/support/oci-server.js';

export interface LocalOci {
  /** Config flags for the runner: store URL, endpoint and API-key auth. */
  flags: Record<string, string>;
  stop(): Promise<void>;
}

/** `dir` holds the private key file; it is the caller's to remove. */
export async function startLocalOci(dir: string): Promise<LocalOci> {
  const key = await makeApiKey(dir);
  const server = await startOciServer({ namespace: 'bench', buckets: ['bench'], keys: [key] });
  return {
    flags: {
      store: 'oci://bench/bench/snap?region=us-ashburn-1',
      'oci-endpoint': server.endpoint,
      'oci-tenancy': key.tenancy,
      'oci-user': key.user,
      'oci-fingerprint': key.fingerprint,
      'oci-private-key-file': key.keyFile,
    },
    stop: () => server.stop(),
  };
}
