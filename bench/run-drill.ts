/**
 * One drill by our worker code (runDrill, as `etcd-autobackup drill` runs it), alone in its
 * process so that its peak RSS is its own. argv[2] is a JSON object `{flags, overrides}` (config
 * flags, and values by config path such as `drill.scratchDir`); argv[3] the snapshot id (default
 * latest). Prints one JSON line: the time of runDrill itself, this process's
 * peak RSS and the throwaway etcd's (VmHWM, sampled every 50 ms while it runs). The drill record is
 * not saved, so every run drills the same store.
 */
import { loadConfig } from '../core/config/index.js';
import { createLogger } from '../core/logger.js';
import { findSnapshot, LATEST } from '../worker/catalog.js';
import { drillSettings, runDrill } from '../worker/drill.js';
import { openStore } from '../worker/stores/open.js';
import { ownPeakRss, peakRssOf } from './peak-rss.js';

export interface RunDrillInput {
  flags: Record<string, string | boolean>;
  overrides?: Record<string, unknown>;
}

export interface DrillRunResult {
  /** Wall time of runDrill, from just before the call to just after it resolved. */
  ms: number;
  /** Peak resident set of this process, bytes. */
  maxRss: number;
  /** Peak resident set of the throwaway etcd (its VmHWM), bytes; 0 when it never started. */
  etcdMaxRss: number;
  ok: boolean;
  failure?: string;
}

async function main(): Promise<void> {
  const { flags, overrides } = JSON.parse(process.argv[2] ?? '{}') as RunDrillInput;
  const config = loadConfig({ env: {}, flags, overrides });
  const store = await openStore(config);
  try {
    const log = createLogger({ level: 'warn' });
    const manifest = await findSnapshot(store, config.cluster, process.argv[3] ?? LATEST);
    let etcdMaxRss = 0;
    let timer: NodeJS.Timeout | undefined;
    const started = performance.now();
    const record = await runDrill({
      ...drillSettings(config),
      store,
      manifest,
      log,
      onEtcdReady: (child) => {
        const pid = child.pid;
        if (pid === undefined) return;
        const sample = async (): Promise<void> => {
          etcdMaxRss = Math.max(etcdMaxRss, await peakRssOf(pid));
        };
        timer = setInterval(() => void sample(), 50);
        return sample();
      },
    });
    const ms = performance.now() - started;
    clearInterval(timer);
    const result: DrillRunResult = {
      ms,
      maxRss: await ownPeakRss(),
      etcdMaxRss,
      ok: record.ok,
      ...(record.failure ? { failure: record.failure } : {}),
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await store.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`run-drill: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
