/**
 * The one place that picks how a drill runs (drill.executor): `local` boots drill.etcd in this
 * process's machine (worker/drill.ts), `job` runs it as a Kubernetes Job with the snapshot's etcd
 * version (worker/drill-job.ts). The worker's hook and scheduler and the CLI all drill through it,
 * so both executors record, alert and notify alike.
 */
import type { Logger } from 'pino';
import type { Config } from '../core/config/index.js';
import { loadIdentities } from './crypto/age.js';
import { loadKeyRing } from './crypto/keys.js';
import { drillSettings, runDrill, type DrillRecord } from './drill.js';
import { drillJobRunnerFor, type DrillJobConfig } from './drill-job.js';
import type { Manifest } from './manifest.js';
import type { Store } from './stores/store.js';

export type DrillRunnerConfig = DrillJobConfig & Pick<Config, 'encryption'>;

export type DrillRunner = (manifest: Manifest, log: Logger, signal?: AbortSignal) => Promise<DrillRecord>;

/** What a caller may add to the configured drill. */
export interface DrillRunnerOptions {
  /**
   * Also replay the delta log from an older snapshot to this one and compare (worker/delta/drill-replay.ts),
   * as `drill.replayLog: true` does for every drill. Local executor only: the drill Job's pod has no
   * scratch etcd to replay into.
   * @defaultValue false
   */
  replayLog?: boolean;
}

export function drillRunnerFor(config: DrillRunnerConfig, store: Store, options: DrillRunnerOptions = {}): DrillRunner {
  const replayLog = config.drill.replayLog || options.replayLog === true;
  if (config.drill.executor === 'job') {
    // The config schema refuses drill.replayLog with executor job, so only the CLI flag gets here.
    if (replayLog) throw new Error('--replay-log runs only with the local drill executor: add --drill-executor local');
    return drillJobRunnerFor(config, store);
  }
  return async (manifest, log, signal) =>
    runDrill({
      ...drillSettings(config),
      store,
      manifest,
      log,
      ...(signal ? { signal } : {}),
      keys: await loadKeyRing(config.encryption),
      identities: await loadIdentities(config.encryption.identityFiles),
      ...(replayLog ? { replayLog: true } : {}),
    });
}
