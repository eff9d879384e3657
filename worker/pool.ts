/**
 * The BullMQ worker that runs snapshot jobs. One job at a time per process, and one snapshot per
 * cluster at a time across processes (a Redis lock; a job that finds it taken waits in the
 * delayed set without spending an attempt). Failed attempts retry with exponential backoff;
 * a crashed worker's job is found stalled by BullMQ and runs again; nothing half-written is ever
 * visible because the store's put and the manifest publish are atomic.
 */
import { hostname } from 'node:os';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { untilAborted } from '../core/abort.js';
import type { Cause } from '../core/cause.js';
import type { Config } from '../core/config/index.js';
import { messageOf, SnapshotError } from '../core/errors.js';
import type { Metrics } from '../core/metrics.js';
import {
  clusterLockKey,
  connectRedis,
  createSnapshotQueue,
  foldEnded,
  keepClusterLock,
  releaseClusterLock,
  retryDelay,
  takerOf,
  MAX_SAMPLES,
  syncSchedule,
  takeFromLedger,
  tryLock,
  QUEUE_NAME,
  type SnapshotJobData,
  type SnapshotJobResult,
} from '../core/queue/index.js';
import { takeBackup } from './backup.js';
import type { Manifest } from './manifest.js';
import type { Notifier } from './notify/notifier.js';
import type { Store } from './stores/store.js';

export interface SnapshotRun {
  cause: Cause;
  signal: AbortSignal;
  log: Logger;
  jobId: string;
}

export type PoolMetrics = Pick<
  Metrics,
  | 'snapshotLastSuccess'
  | 'snapshotDuration'
  | 'snapshotSize'
  | 'snapshotFailures'
  | 'snapshots'
  | 'queueJobs'
  | 'uncoveredChanges'
  | 'oldestUncoveredChange'
  | 'snapshotRetries'
  | 'oldestPendingChange'
>;

export interface WorkerPoolOptions {
  /** The settings the pool and the snapshots it takes read (cluster name, etcd, snapshot, Redis, queue). */
  config: Pick<Config, 'cluster' | 'etcd' | 'snapshot' | 'redis' | 'queue'>;
  /** Where snapshots and manifests are written. */
  store: Store;
  /** Each job logs through a child of it with the job id, window and attempt. */
  log: Logger;
  /**
   * Snapshot and queue metrics to update.
   * @defaultValue none: no metrics are kept and queue counts are not polled
   */
  metrics?: PoolMetrics;
  /**
   * Takes one snapshot (the Kubernetes Job executor replaces it).
   * @defaultValue takeBackup in this process
   */
  runSnapshot?: (run: SnapshotRun) => Promise<Manifest>;
  /**
   * Runs after each published snapshot while the cluster lock is still held (retention: no two
   * prunes of a cluster at once). Its failure is logged and never fails the snapshot job.
   *
   * @defaultValue none
   */
  afterSnapshot?: (manifest: Manifest, log: Logger) => Promise<void>;
  /**
   * Told of each published snapshot and failed attempt (Kubernetes Events, webhooks); never waited on.
   * @defaultValue none
   */
  notifier?: Notifier;
  /**
   * BullMQ job lock and cluster lock lifetime: how soon a crashed worker's job is retried.
   * @defaultValue 60_000 (the worker role passes queue.lockDuration)
   */
  lockDurationMs?: number;
  /**
   * How often BullMQ looks for stalled jobs.
   * @defaultValue 30_000
   */
  stalledIntervalMs?: number;
  /**
   * When another worker holds the cluster's lock, try again after this long.
   * @defaultValue 5_000
   */
  lockRetryMs?: number;
  /**
   * On close, how long the running snapshot may go on before it is abandoned (and re-queued).
   * @defaultValue 25_000 (the worker role passes queue.shutdownGrace)
   */
  graceMs?: number;
  /**
   * How often queue job counts are exported to the metrics.
   * @defaultValue 15_000
   */
  metricsIntervalMs?: number;
  /**
   * Gives up starting (Redis not answering yet) when aborted.
   * @defaultValue none: waits for Redis until closed
   */
  signal?: AbortSignal;
}

export interface WorkerPool {
  readonly worker: Worker<SnapshotJobData, SnapshotJobResult>;
  /** Stops taking jobs; waits for the running snapshot up to `graceMs`, then abandons it cleanly. */
  close(): Promise<void>;
}

class ShutdownAbort extends Error {
  override readonly name = 'ShutdownAbort';
}

export async function startWorkerPool(options: WorkerPoolOptions): Promise<WorkerPool> {
  const { config, store, log, metrics } = options;
  const lockMs = options.lockDurationMs ?? 60_000;
  const lockRetryMs = options.lockRetryMs ?? 5_000;
  const graceMs = options.graceMs ?? 25_000;
  const prefix = config.redis.prefix;
  const owner = `${hostname()}/${process.pid}`;
  const runSnapshot =
    options.runSnapshot ??
    ((run: SnapshotRun) => takeBackup({ config, store, log: run.log, cause: run.cause, signal: run.signal }));

  // Lock and ledger commands fail fast during an outage: the job then fails or stalls and is retried.
  const redis = connectRedis(config.redis, 'producer');
  redis.on('error', () => undefined);
  const queue = createSnapshotQueue(config, redis);
  let current: AbortController | undefined;
  let shuttingDown = false;

  const processor = async (
    job: Job<SnapshotJobData, SnapshotJobResult>,
    token?: string,
    bullSignal?: AbortSignal,
  ): Promise<SnapshotJobResult> => {
    const data = job.data;
    const jobLog = log.child({ jobId: job.id, window: data.window, attempt: job.attemptsMade + 1 });
    if (data.cluster !== config.cluster) {
      throw new UnrecoverableError(
        `job is for cluster "${data.cluster}" but this worker backs up "${config.cluster}": give each installation its own redis.prefix`,
      );
    }
    if (data.generation !== undefined) {
      const by = await takerOf(redis, prefix, data.cluster, { id: data.window }, data.generation);
      if (by !== undefined && by !== job.id) {
        jobLog.debug({ foldedInto: by }, "this window's changes were taken into another job's snapshot");
        return { foldedInto: by };
      }
    }
    const lock = await tryLock(redis, clusterLockKey(prefix, data.cluster), lockMs, owner);
    if (lock === undefined) {
      jobLog.debug('another snapshot of this cluster is running; waiting');
      await job.moveToDelayed(Date.now() + lockRetryMs, token);
      throw new DelayedError();
    }
    const controller = new AbortController();
    current = controller;
    const renewal = keepClusterLock(lock, lockMs, controller, jobLog);
    const started = Date.now();
    try {
      const cause = await causeOf(job, redis, prefix, jobLog);
      if ('foldedInto' in cause) return cause;
      const signal = bullSignal ? AbortSignal.any([controller.signal, bullSignal]) : controller.signal;
      const manifest = await runSnapshot({ cause, signal, log: jobLog, jobId: job.id ?? '' });
      metrics?.snapshots.inc({ cluster: data.cluster, result: 'success' });
      metrics?.snapshotLastSuccess.set({ cluster: data.cluster }, Date.now() / 1000);
      metrics?.snapshotDuration.observe({ cluster: data.cluster }, (Date.now() - started) / 1000);
      metrics?.snapshotSize.set({ cluster: data.cluster, kind: 'db' }, manifest.dbSize);
      metrics?.snapshotSize.set({ cluster: data.cluster, kind: 'stored' }, manifest.storedSize);
      options.notifier?.snapshotPublished(manifest);
      await Promise.resolve(manifest)
        .then((m) => options.afterSnapshot?.(m, jobLog))
        .catch((err: unknown) =>
          jobLog.error({ err: messageOf(err) }, 'after-snapshot hook failed; the snapshot itself succeeded'),
        );
      return { id: manifest.id, key: manifest.key, revision: manifest.etcd.revision, storedSize: manifest.storedSize };
    } catch (err) {
      if (shuttingDown && controller.signal.reason instanceof ShutdownAbort) {
        // Abandoned by a shutdown, not failed: back to the queue without spending an attempt.
        jobLog.warn('snapshot abandoned by shutdown; nothing was published; the job is queued again');
        await job.moveToDelayed(Date.now(), token);
        throw new DelayedError();
      }
      metrics?.snapshots.inc({ cluster: data.cluster, result: 'failure' });
      const stage = err instanceof SnapshotError ? err.stage : 'other';
      metrics?.snapshotFailures.inc({ cluster: data.cluster, stage });
      options.notifier?.snapshotFailed({
        cluster: data.cluster,
        jobId: job.id ?? '',
        attempt: job.attemptsMade + 1,
        stage,
        message: messageOf(err),
        retrying: job.attemptsMade + 1 < (job.opts.attempts ?? 1) && !(err instanceof UnrecoverableError),
      });
      throw err;
    } finally {
      clearInterval(renewal);
      current = undefined;
      await releaseClusterLock(lock, jobLog);
    }
  };

  const workerRedis = connectRedis(config.redis, 'worker');
  workerRedis.on('error', () => undefined);
  const worker = new Worker<SnapshotJobData, SnapshotJobResult>(QUEUE_NAME, processor, {
    connection: workerRedis,
    prefix,
    concurrency: 1,
    lockDuration: lockMs,
    stalledInterval: options.stalledIntervalMs ?? 30_000,
    // A job whose worker crashed twice is kept as failed rather than crash-looping the pool.
    maxStalledCount: 2,
    removeOnComplete: { count: config.queue.keepJobs },
    removeOnFail: { count: config.queue.keepJobs },
    autorun: false,
    settings: {
      backoffStrategy: (attemptsMade) => retryDelay(attemptsMade, config.queue.backoff, config.queue.backoffMax),
    },
  });
  worker.on('error', (err) => log.warn({ err: messageOf(err) }, 'queue worker error'));
  worker.on('failed', (job, err) => {
    const retried =
      job !== undefined && job.attemptsMade < (job.opts.attempts ?? 1) && !(err instanceof UnrecoverableError);
    if (retried) metrics?.snapshotRetries.inc({ cluster: config.cluster });
    log.error(
      { jobId: job?.id, attempts: job?.attemptsMade, retried, err: messageOf(err) },
      retried
        ? 'snapshot job attempt failed; retrying'
        : 'snapshot job failed for good; its changes are in no snapshot',
    );
  });
  worker.on('stalled', (jobId) => log.warn({ jobId }, 'snapshot job stalled (its worker stopped); it runs again'));

  try {
    await untilAborted(syncSchedule(queue, config), options.signal);
  } catch (err) {
    // Disconnect first: closing BullMQ objects waits for a connection that may never be ready.
    redis.disconnect();
    workerRedis.disconnect();
    void worker.close(true).catch(() => undefined);
    void queue.close().catch(() => undefined);
    if (options.signal?.aborted) throw new Error('the worker was stopped before Redis answered', { cause: err });
    throw new Error(`setting up the queue.maxInterval schedule failed: ${messageOf(err)}`, { cause: err });
  }
  void worker.run().catch((err: unknown) => log.error({ err: messageOf(err) }, 'queue worker stopped'));
  // A Redis restarted empty has lost the maxInterval schedule with everything else: set it again
  // on every reconnect (idempotent when it is still there).
  redis.on('ready', () => {
    if (shuttingDown) return;
    syncSchedule(queue, config).catch((err: unknown) =>
      log.warn({ err: messageOf(err) }, 'restoring the queue.maxInterval schedule after a reconnect failed'),
    );
  });

  const countsTimer = metrics ? setInterval(() => void exportCounts(), options.metricsIntervalMs ?? 15_000) : undefined;
  countsTimer?.unref();
  async function exportCounts(): Promise<void> {
    try {
      const counts = await queue.getJobCounts('waiting', 'delayed', 'active', 'failed', 'completed');
      for (const [state, n] of Object.entries(counts)) metrics?.queueJobs.set({ state }, n);
      // Jobs being retried are few (one per failing window), so loading them is cheap.
      const pending = await queue.getJobs(['waiting', 'delayed', 'active', 'prioritized']);
      const { changes, oldestMs } = uncovered(pending, config.cluster, Date.now());
      metrics?.uncoveredChanges.set({ cluster: config.cluster }, changes);
      metrics?.oldestUncoveredChange.set({ cluster: config.cluster }, oldestMs / 1000);
      metrics?.oldestPendingChange.set(
        { cluster: config.cluster },
        oldestPendingChangeMs(pending, config.cluster, Date.now()) / 1000,
      );
    } catch {
      // Redis away: redis_up says so; keep the last counts.
    }
  }

  let closing: Promise<void> | undefined;
  return {
    worker,
    close() {
      closing ??= (async () => {
        shuttingDown = true;
        clearInterval(countsTimer);
        const grace = setTimeout(() => current?.abort(new ShutdownAbort('worker shutting down')), graceMs);
        // A store that ignores the abort must not hold the process forever: after a last
        // margin the worker closes anyway and the job, its lock expiring, runs again elsewhere.
        let force: NodeJS.Timeout | undefined;
        const forced = new Promise<void>((resolve) => {
          force = setTimeout(() => resolve(worker.close(true).catch(() => undefined)), graceMs + 5_000);
        });
        try {
          await Promise.race([worker.close(), forced]);
        } finally {
          clearTimeout(force);
          clearTimeout(grace);
          await queue.close().catch(() => undefined);
          await redis.quit().catch(() => redis.disconnect());
          await workerRedis.quit().catch(() => workerRedis.disconnect());
        }
      })();
      return closing;
    },
  };
}

/**
 * The manifest's cause. For a window job this first closes the job's ledger generation, so that
 * every trigger counted before now is attributed here and any later one makes a new job. Then
 * (for every job) it closes the open generation of every window of the cluster that has ended:
 * their jobs, waiting behind this snapshot, would only take the same snapshot again. The summed
 * counts and samples are written back to the job data for the dashboard. A window job whose
 * generation another job closed returns that job's id instead: its changes are covered there.
 */
async function causeOf(
  job: Job<SnapshotJobData, SnapshotJobResult>,
  redis: Redis,
  prefix: string,
  log: Logger,
): Promise<Cause | { foldedInto: string }> {
  let data = job.data;
  const jobId = job.id ?? '';
  let causes = { ...data.causes };
  let samples = [...data.samples];
  let changed = false;
  if (data.generation !== undefined) {
    // A generation is closed once; a retry finds it closed by itself and keeps what the first attempt stored.
    const taken = await takeFromLedger(redis, prefix, data.cluster, { id: data.window }, data.generation, jobId);
    if (!taken.taken && taken.by !== '' && taken.by !== jobId) return { foldedInto: taken.by };
    if (taken.taken) {
      if (Object.keys(taken.counts).length > 0) causes = taken.counts;
      samples = mergeSamples(samples, taken.samples);
      changed = true;
    }
  }
  const folded = await foldEnded(redis, prefix, data.cluster, Date.now(), jobId);
  if (folded.windows > 0) {
    for (const [source, n] of Object.entries(folded.counts) as [keyof typeof causes, number][])
      causes[source] = (causes[source] ?? 0) + n;
    samples = mergeSamples(samples, folded.samples);
    changed = true;
    log.info({ windows: folded.windows, causes }, 'folded the ended windows waiting behind this snapshot into it');
  }
  if (changed) {
    data = { ...data, causes, samples };
    await job.updateData(data);
  }
  const source = data.source ?? (Object.keys(data.causes)[0] as Cause['source'] | undefined) ?? 'manual';
  return { source, counts: data.causes, samples: data.samples, window: data.window };
}

function mergeSamples(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])].slice(0, MAX_SAMPLES);
}

/** The changes of this cluster's jobs that failed at least once and wait for another attempt. */
export function uncovered(
  jobs: readonly (Pick<Job<SnapshotJobData>, 'data' | 'attemptsMade' | 'timestamp'> | undefined)[],
  cluster: string,
  nowMs: number,
): { changes: number; oldestMs: number } {
  let changes = 0;
  let oldestMs = 0;
  for (const job of jobs) {
    if (!job || job.attemptsMade === 0 || job.data.cluster !== cluster) continue;
    changes += Object.values(job.data.causes).reduce((a, b) => a + (b ?? 0), 0);
    oldestMs = Math.max(oldestMs, nowMs - job.timestamp);
  }
  return { changes, oldestMs };
}

/**
 * How long the oldest change that is in no published snapshot yet has waited: the oldest pending
 * window or manual job of `cluster` (a job is created with its window's first change). The
 * scheduled job waits for its time by design and carries no change, so it is left out. This is
 * what the "change not backed up" alert compares with N debounce windows.
 */
export function oldestPendingChangeMs(
  jobs: readonly (Pick<Job<SnapshotJobData>, 'data' | 'timestamp'> | undefined)[],
  cluster: string,
  nowMs: number,
): number {
  let oldestMs = 0;
  for (const job of jobs) {
    if (!job || job.data.cluster !== cluster || job.data.window === 'schedule') continue;
    oldestMs = Math.max(oldestMs, nowMs - job.timestamp);
  }
  return oldestMs;
}
