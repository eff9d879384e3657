/**
 * What the worker does to its store once at start, as the original service did: create the bucket
 * when it is missing (store.createBucket) and put the lifecycle rule on the cluster's prefix
 * (lifecycle.enabled). A missing bucket that may not be created stops the worker (it could never
 * back up); a lifecycle rule that cannot be written is a logged, counted warning, since snapshots
 * work without it and a crash loop would stop them.
 */
import type { Config } from '../core/config/index.js';
import { ConfigError, messageOf } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { applyLifecycle } from './lifecycle.js';
import type { Store } from './stores/store.js';

/** A store whose bucket can be checked and created (s3, ncp, oci). */
interface BucketStore {
  ensureBucket(create: boolean): Promise<'exists' | 'created'>;
}

function hasBucket(store: Store): store is Store & BucketStore {
  return typeof (store as Partial<BucketStore>).ensureBucket === 'function';
}

/** Whether the store URL names a provider with lifecycle rules the worker can set. */
function lifecycleProvider(url: string): boolean {
  return url.startsWith('s3://') || url.startsWith('oci://');
}

export async function prepareStore(options: {
  config: Config;
  store: Store;
  log: Logger;
  metrics: Metrics;
}): Promise<void> {
  const { config, store, log, metrics } = options;
  if (config.store.createBucket) {
    if (!hasBucket(store))
      throw new ConfigError(
        `store.createBucket: ${store.location} has no bucket to create (s3, ncp and oci stores do)`,
      );
    const result = await store.ensureBucket(true);
    if (result === 'created') log.info({ store: store.location }, 'created the bucket (store.createBucket)');
  }
  if (config.lifecycle.enabled && lifecycleProvider(config.store.url)) {
    try {
      const applied = await applyLifecycle(config, false, store);
      const changed = applied.provider === 's3' ? applied.result.change !== 'unchanged' : applied.result.changed;
      log.info({ store: store.location, provider: applied.provider, changed }, 'lifecycle rule in place');
      if (applied.provider === 's3') for (const warning of applied.result.warnings) log.warn(warning);
    } catch (err) {
      metrics.storeSetupWarnings.inc({ cluster: config.cluster, step: 'lifecycle' });
      log.warn(
        { store: store.location, err: messageOf(err) },
        'could not apply the lifecycle rule (snapshots go on; `etcd-autobackup lifecycle apply` retries it)',
      );
    }
  }
}
