/** The worker role: the store and the pool of snapshot workers fed by the queue. */
import type { Config } from '../core/config/index.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { startWorkerPool, type WorkerPool } from './pool.js';
import { loadKeyRing } from './crypto/keys.js';
import { pruneAfterSnapshot } from './prune.js';
import { drillAfterSnapshot } from './drill-hook.js';
import type { Manifest } from './manifest.js';
import { messageOf } from '../core/errors.js';
import { openStore } from './stores/open.js';
import type { Store } from './stores/store.js';

export interface WorkerRole {
  store: Store;
  pool: WorkerPool;
  /** Ready while the worker's Redis connection is up. */
  ready(): boolean;
  close(): Promise<void>;
}

export async function startWorkerRole(options: { config: Config; log: Logger; metrics: Metrics }): Promise<WorkerRole> {
  const { config, log, metrics } = options;
  // Each snapshot reads the key files again (a rotated Secret applies without a restart); reading
  // them now makes a missing or malformed key stop the worker at start, not at its first snapshot.
  await loadKeyRing(config.encryption);
  const store = await openStore(config);
  const prune =
    config.retention.enabled && config.retention.afterSnapshot
      ? pruneAfterSnapshot({ config, store, metrics })
      : undefined;
  // Drill before pruning, so retention already sees the new drill record.
  const drill = config.drill.afterSnapshot > 0 ? drillAfterSnapshot({ config, store, metrics }) : undefined;
  const afterSnapshot =
    prune || drill
      ? async (manifest: Manifest, hookLog: Logger) => {
          await drill?.(manifest, hookLog).catch((err: unknown) =>
            hookLog.error({ err: messageOf(err) }, 'drill after snapshot failed to run; the snapshot itself succeeded'),
          );
          await prune?.(manifest, hookLog);
        }
      : undefined;
  // executor job: each snapshot runs as a Kubernetes Job; the Kubernetes client loads only then.
  const runSnapshot =
    config.executor.mode === 'job' ? (await import('./job-executor.js')).jobExecutorFor(config, store) : undefined;
  const pool = await startWorkerPool({
    config,
    store,
    log: log.child({ component: 'worker' }),
    metrics,
    lockDurationMs: config.queue.lockDuration,
    // Look for stalled jobs twice per lock period, so a crashed worker's job waits at most ~1.5 locks.
    stalledIntervalMs: Math.max(1000, Math.round(config.queue.lockDuration / 2)),
    graceMs: config.queue.shutdownGrace,
    ...(runSnapshot ? { runSnapshot } : {}),
    ...(afterSnapshot ? { afterSnapshot } : {}),
  });
  return {
    store,
    pool,
    ready: () => pool.worker.isRunning(),
    async close() {
      await pool.close();
      await store.close();
    },
  };
}
