/** The bucket lifecycle rule of the cluster's prefix, per provider (S3 rules, OCI lifecycle policy). */
import type { Config } from '../core/config/index.js';
import { ConfigError } from '../core/errors.js';
import type { OciLifecycleResult } from './stores/oci-lifecycle.js';
import type { LifecycleResult } from './stores/s3-lifecycle.js';
import type { Store } from './stores/store.js';

/** What apply did, per provider: S3 and OCI model lifecycle rules differently. */
export type Applied = { provider: 's3'; result: LifecycleResult } | { provider: 'oci'; result: OciLifecycleResult };

export async function applyLifecycle(config: Config, dryRun: boolean, opened?: Store): Promise<Applied> {
  const url = config.store.url;
  const scheme = url.includes('://') ? url.slice(0, url.indexOf('://')) : 'file';
  switch (scheme) {
    case 's3': {
      const { applyS3Lifecycle } = await import('./stores/s3-lifecycle.js');
      return {
        provider: 's3',
        result: await applyS3Lifecycle({
          url,
          s3: config.store.s3,
          cluster: config.cluster,
          lifecycle: config.lifecycle,
          dryRun,
        }),
      };
    }
    case 'oci': {
      const { OciStore, openOciStore } = await import('./stores/oci.js');
      const { applyOciLifecycle } = await import('./stores/oci-lifecycle.js');
      // The worker's own store when it has one open; else one for this call only.
      const store = opened instanceof OciStore ? opened : openOciStore(url, config.store.oci);
      try {
        return {
          provider: 'oci',
          result: await applyOciLifecycle(store, config.cluster, config.lifecycle, { dryRun }),
        };
      } finally {
        if (store !== opened) await store.close();
      }
    }
    case 'ncp':
      throw new ConfigError(
        'store.url: NCP Object Storage lifecycle rules are set in the NCP console (Object Storage > Bucket > Lifecycle management); see docs/retention.md',
      );
    case 'file':
      throw new ConfigError(
        'store.url: a file store has no lifecycle rules; retention (etcd-autobackup prune) deletes old snapshots there',
      );
    default:
      throw new ConfigError(`store.url: "${scheme}://" stores have no lifecycle support yet`);
  }
}
