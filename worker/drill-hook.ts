/**
 * `drill.afterSnapshot: N`: drill every Nth snapshot this worker publishes, from the pool's
 * after-snapshot hook. The count is per process: with several workers each drills its own every
 * Nth, which keeps the rate near 1/N without shared state.
 *
 * Where the drill runs decides the locking (worker/drill-schedule.ts has the whole picture): a
 * local drill runs inline, under the cluster's snapshot lock the snapshot still holds, since it
 * uses this worker's CPU and disk and no snapshot of the cluster should run beside it. A drill Job
 * (drill.executor job) would hold that lock for up to drill.job.timeout while it waits on
 * Kubernetes and so block the next snapshot: the hook only enqueues it on the drills queue (once
 * per snapshot) and returns; the queue's worker runs it under the cluster's drill lock.
 */
import type { Logger } from 'pino';
import type { Config } from '../core/config/index.js';
import type { Metrics } from '../core/metrics.js';
import { recordDrillMetrics, saveDrillRecord } from './drill.js';
import { drillRunnerFor, type DrillRunnerConfig } from './drill-runner.js';
import type { Manifest } from './manifest.js';
import type { Notifier } from './notify/notifier.js';
import type { Store } from './stores/store.js';

/** Pure: whether the `count`th snapshot (1-based) is drilled with every = N (0 = never). */
export function isDrillDue(count: number, every: number): boolean {
  return every > 0 && count % every === 0;
}

/** Pure: whether an after-snapshot drill is queued rather than run inline under the snapshot lock. */
export function drillQueuedAfterSnapshot(drill: Pick<Config['drill'], 'executor'>): boolean {
  return drill.executor === 'job';
}

export function drillAfterSnapshot(options: {
  config: DrillRunnerConfig;
  store: Store;
  metrics?: Pick<Metrics, 'drillLastSuccess' | 'drillDuration' | 'drills'>;
  notifier?: Notifier;
  /**
   * Queues the drill of a snapshot (DrillScheduler.enqueue); required when drillQueuedAfterSnapshot.
   * @defaultValue none
   */
  enqueue?: (manifest: Manifest) => Promise<void>;
}): (manifest: Manifest, log: Logger) => Promise<void> {
  const { config, store, metrics, notifier } = options;
  let drill: (manifest: Manifest, log: Logger) => Promise<void>;
  if (drillQueuedAfterSnapshot(config.drill)) {
    const enqueue = options.enqueue;
    if (!enqueue) throw new Error('drill.executor job: the after-snapshot drill needs the drills queue (enqueue)');
    drill = async (manifest, log) => {
      await enqueue(manifest);
      log.info({ id: manifest.id }, 'drill after snapshot queued (drill.executor job)');
    };
  } else {
    const run = drillRunnerFor(config, store);
    drill = async (manifest, log) => {
      const record = await run(manifest, log);
      if (metrics) recordDrillMetrics(metrics, record);
      await saveDrillRecord(store, record);
      notifier?.drillFinished(record);
    };
  }
  let published = 0;
  return async (manifest, log) => {
    published++;
    if (isDrillDue(published, config.drill.afterSnapshot)) await drill(manifest, log);
  };
}
