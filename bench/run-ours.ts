/**
 * One snapshot by our worker code, alone in its process so that its peak RSS is its own.
 * argv[2] is a JSON object of config flags (`{"endpoints": "...", "store": "...", ...}`); prints one
 * JSON line: the time of takeBackup itself, the peak and starting RSS, and the sizes. The objects
 * it wrote are deleted afterwards so the next run starts from an empty store.
 */
// As in production: cli/main.ts imports it first and loads the worker's modules only after it.
import '../core/young-generation.js';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { ownPeakRss } from './peak-rss.js';

export interface RunResult {
  /** Wall time of takeBackup, from just before the call to just after it resolved. */
  ms: number;
  /**
   * CPU time (user + system) of this process during takeBackup, all its threads; child processes
   * (zstd) are not included. Less swayed by neighbours than wall time.
   */
  cpuMs: number;
  /** Peak resident set of this process, bytes. */
  maxRss: number;
  /** Resident set once the modules were loaded, before the snapshot, bytes. */
  startRss: number;
  dbSize: number;
  storedSize: number;
  /**
   * Peaks of process.memoryUsage() sampled every 50 ms, bytes: where the RSS went. External and
   * array buffers can include the 64 MiB buffer core/garbage-bound.ts allocates to ask V8 for a
   * collection; it is never touched, so it is not in the RSS.
   */
  peaks: { heapTotal: number; external: number; arrayBuffers: number };
  /** Full (mark-compact) collections during takeBackup, V8's and core/garbage-bound.ts's, and their total pause, ms. */
  majorGcs: { count: number; ms: number };
}

/** Counts full collections; a storm of them (V8 collecting a heap that is all live) shows here as CPU. */
function majorGcCounter(): { stop: () => RunResult['majorGcs'] } {
  const counted = { count: 0, ms: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const { detail } = e as PerformanceEntry & { detail?: { kind?: number } };
      if (detail?.kind !== constants.NODE_PERFORMANCE_GC_MAJOR) continue;
      counted.count++;
      counted.ms += e.duration;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    stop: () => {
      observer.disconnect();
      return counted;
    },
  };
}

/** Samples memoryUsage while the snapshot runs; a sampler is coarse but costs nothing measurable. */
function memorySampler(): { stop: () => RunResult['peaks'] } {
  const peaks = { heapTotal: 0, external: 0, arrayBuffers: 0 };
  // BENCH_MEM_TRACE=1: the timeline on stderr, one line per 10 samples (where the peak was reached).
  const trace = process.env.BENCH_MEM_TRACE === '1';
  const t0 = performance.now();
  let n = 0;
  const sample = (): void => {
    const m = process.memoryUsage();
    if (trace && n++ % 10 === 0) {
      const f = (b: number): string => (b / 1048576).toFixed(0);
      process.stderr.write(
        `mem ${((performance.now() - t0) / 1000).toFixed(1)}s rss ${f(m.rss)} heap ${f(m.heapUsed)}/${f(m.heapTotal)} ext ${f(m.external)} ab ${f(m.arrayBuffers)}\n`,
      );
    }
    peaks.heapTotal = Math.max(peaks.heapTotal, m.heapTotal);
    peaks.external = Math.max(peaks.external, m.external);
    peaks.arrayBuffers = Math.max(peaks.arrayBuffers, m.arrayBuffers);
  };
  const timer = setInterval(sample, 50);
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return peaks;
    },
  };
}

async function main(): Promise<void> {
  const flags = JSON.parse(process.argv[2] ?? '{}') as Record<string, string | boolean>;
  const [{ loadConfig }, { createLogger }, { takeBackup }, { openStore }, { manifestKey }] = await Promise.all([
    import('../core/config/index.js'),
    import('../core/logger.js'),
    import('../worker/backup.js'),
    import('../worker/stores/open.js'),
    import('../worker/manifest.js'),
  ]);
  const startRss = process.memoryUsage.rss();
  const config = loadConfig({ env: {}, flags });
  const store = await openStore(config);
  try {
    const log = createLogger({ level: 'warn' });
    const sampler = memorySampler();
    const gcs = majorGcCounter();
    const started = performance.now();
    const cpu = process.cpuUsage();
    const manifest = await takeBackup({ config, store, log, cause: { source: 'manual' } });
    const used = process.cpuUsage(cpu);
    const ms = performance.now() - started;
    const peaks = sampler.stop();
    const majorGcs = gcs.stop();
    const result: RunResult = {
      ms,
      cpuMs: (used.user + used.system) / 1000,
      maxRss: await ownPeakRss(),
      startRss,
      dbSize: manifest.dbSize,
      storedSize: manifest.storedSize,
      peaks,
      majorGcs,
    };
    await store.delete(manifest.key);
    await store.delete(manifestKey(manifest.cluster, manifest.id));
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await store.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`run-ours: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
