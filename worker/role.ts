/** The worker role: the store and the pool of snapshot workers fed by the queue. */
import type { Config } from '../core/config/index.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { startWorkerPool, type WorkerPool } from './pool.js';
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
  const store = await openStore(config);
  const pool = await startWorkerPool({ config, store, log: log.child({ component: 'worker' }), metrics });
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
