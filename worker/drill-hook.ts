/**
 * `drill.afterSnapshot: N`: drill every Nth snapshot this worker publishes, in the pool's
 * after-snapshot hook, so it runs under the cluster lock that snapshot held (no snapshot of the
 * cluster runs meanwhile). The count is per process: with several workers each drills its own
 * every Nth, which keeps the rate near 1/N without shared state.
 */
import type { Logger } from 'pino';
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

export function drillAfterSnapshot(options: {
  config: DrillRunnerConfig;
  store: Store;
  metrics?: Pick<Metrics, 'drillLastSuccess' | 'drillDuration' | 'drills'>;
  notifier?: Notifier;
}): (manifest: Manifest, log: Logger) => Promise<void> {
  const { config, store, metrics, notifier } = options;
  let published = 0;
  const drill = drillRunnerFor(config, store);
  return async (manifest, log) => {
    published++;
    if (!isDrillDue(published, config.drill.afterSnapshot)) return;
    const record = await drill(manifest, log);
    if (metrics) recordDrillMetrics(metrics, record);
    await saveDrillRecord(store, record);
    notifier?.drillFinished(record);
  };
}
