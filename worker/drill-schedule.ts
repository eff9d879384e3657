/**
 * The drills queue (`drills`): `drill.schedule` is a BullMQ job scheduler on it that drills the
 * cluster's newest snapshot every tick (every worker upserts the same scheduler id, and BullMQ
 * makes one job per tick whatever the number of workers); with drill.executor job the
 * after-snapshot hook enqueues its drills here too, one job per snapshot (worker/drill-hook.ts).
 *
 * Locking, one drill at a time per cluster either way (drillLockKeyFor): a local drill uses this
 * worker's CPU and disk, so it runs under the cluster's snapshot lock (core/queue/lock.ts) and no
 * snapshot of the cluster runs beside it; a drill Job runs elsewhere and reads only the stored
 * object, so it takes the cluster's drill lock instead, and snapshots go on while it runs (a
 * snapshot is never delayed by a drill Job, up to drill.job.timeout long). A drill that finds its
 * lock taken waits in the delayed set and tries again, as a snapshot job does.
 */
import { hostname } from 'node:os';
import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../core/config/index.js';
import { untilAborted } from '../core/abort.js';
import { messageOf } from '../core/errors.js';
import type { Metrics } from '../core/metrics.js';
import {
  clusterLockKey,
  connectRedis,
  drillLockKey,
  drillScheduleId,
  keepClusterLock,
  releaseClusterLock,
  tryLock,
  DRILL_QUEUE_NAME,
} from '../core/queue/index.js';
import { findSnapshot, listSnapshots, SnapshotNotFoundError } from './catalog.js';
import { recordDrillMetrics, saveDrillRecord } from './drill.js';
import { drillRunnerFor, type DrillRunner, type DrillRunnerConfig } from './drill-runner.js';
import type { Manifest } from './manifest.js';
import type { Notifier } from './notify/notifier.js';
import type { Store } from './stores/store.js';

export { DRILL_QUEUE_NAME, drillScheduleId };
export const DRILL_JOB_NAME = 'drill';

export interface DrillJobData {
  cluster: string;
  /** The snapshot to drill (an after-snapshot drill); absent: the newest (a scheduled tick). */
  snapshotId?: string;
}

/** What a drill job returns (kept on the completed job; `status` shows the last one). */
export type DrillJobResult =
  | { id: string; ok: boolean; failure?: string; at: string; durationMs: number }
  | { skipped: 'no snapshots yet' | 'the snapshot is no longer stored' };

/**
 * Pure: the lock a drill of the cluster holds. A local drill restores and boots etcd on this
 * worker, so it takes the snapshot lock; a drill Job (drill.executor job) only reads the stored
 * object, so it takes the cluster's drill lock and never holds up a snapshot.
 */
export function drillLockKeyFor(config: Pick<Config, 'cluster' | 'drill'> & { redis: { prefix: string } }): string {
  return config.drill.executor === 'job'
    ? drillLockKey(config.redis.prefix, config.cluster)
    : clusterLockKey(config.redis.prefix, config.cluster);
}

/** The queue job id of the drill after snapshot `id`: the same on every try, so it is enqueued once. */
export function afterSnapshotDrillJobId(cluster: string, id: string): string {
  return `after-snapshot-${cluster}-${id}`.replaceAll(':', '-');
}

/** Enqueues the drill of one snapshot (drill.afterSnapshot with drill.executor job); a repeat is a no-op. */
export async function enqueueSnapshotDrill(queue: DrillQueue, cluster: string, id: string): Promise<void> {
  await queue.add(DRILL_JOB_NAME, { cluster, snapshotId: id }, { jobId: afterSnapshotDrillJobId(cluster, id) });
}

export type DrillQueue = Queue<DrillJobData, DrillJobResult, string>;

export function createDrillQueue(config: Pick<Config, 'redis'>, connection: Redis): DrillQueue {
  const queue: DrillQueue = new Queue<DrillJobData, DrillJobResult, string>(DRILL_QUEUE_NAME, {
    connection,
    prefix: config.redis.prefix,
    // A drill is not retried: the next tick drills again, and a failed drill is a result, not an error.
    defaultJobOptions: { attempts: 1, removeOnComplete: { count: 50 }, removeOnFail: { count: 50 } },
  });
  queue.on('error', () => undefined);
  return queue;
}

/**
 * Makes the drill scheduler match `drill.schedule` (removed when 0). Idempotent: an unchanged
 * schedule is left alone, so a restarting worker neither adds a drill nor shifts the ticks.
 */
export async function syncDrillSchedule(queue: DrillQueue, config: Pick<Config, 'cluster' | 'drill'>): Promise<void> {
  const id = drillScheduleId(config.cluster);
  if (config.drill.schedule === 0) {
    await queue.removeJobScheduler(id);
    return;
  }
  const existing = await queue.getJobScheduler(id);
  if (existing?.every === config.drill.schedule) return;
  await queue.upsertJobScheduler(
    id,
    { every: config.drill.schedule },
    { name: DRILL_JOB_NAME, data: { cluster: config.cluster }, opts: { attempts: 1 } },
  );
}

export interface DrillSchedulerOptions {
  config: DrillRunnerConfig & Pick<Config, 'redis' | 'queue'>;
  store: Store;
  log: Logger;
  metrics?: Pick<Metrics, 'drillLastSuccess' | 'drillDuration' | 'drills'>;
  notifier?: Notifier;
  /** When the cluster's lock is taken, try again after this long. @defaultValue 5000 */
  lockRetryMs?: number;
  /** Cluster lock lifetime, renewed while the drill runs. @defaultValue config.queue.lockDuration */
  lockDurationMs?: number;
  /**
   * Gives up setting the scheduler when aborted (a shutdown while Redis is down: BullMQ's calls
   * wait for a connection forever). @defaultValue never
   */
  signal?: AbortSignal;
  /** How a drill runs. @defaultValue drillRunnerFor(config, store), drill.executor's */
  runner?: DrillRunner;
}

export interface DrillScheduler {
  readonly worker: Worker<DrillJobData, DrillJobResult>;
  /** Queues a drill of snapshot `id` (once per id), run under the drill lock by any worker. */
  enqueue(manifest: Pick<Manifest, 'id'>): Promise<void>;
  close(): Promise<void>;
}

export async function startDrillScheduler(options: DrillSchedulerOptions): Promise<DrillScheduler> {
  const { config, store, log, metrics } = options;
  const lockMs = options.lockDurationMs ?? config.queue.lockDuration;
  const lockRetryMs = options.lockRetryMs ?? 5_000;
  const owner = `${hostname()}/${process.pid}/drill`;
  const redis = connectRedis(config.redis, 'producer');
  redis.on('error', () => undefined);
  const queue = createDrillQueue(config, redis);
  let current: AbortController | undefined;
  const drill = options.runner ?? drillRunnerFor(config, store);
  const lockKey = drillLockKeyFor(config);

  const processor = async (job: Job<DrillJobData, DrillJobResult>, token?: string): Promise<DrillJobResult> => {
    const jobLog = log.child({ drillJobId: job.id });
    if (job.data.cluster !== config.cluster) {
      throw new UnrecoverableError(
        `drill job is for cluster "${job.data.cluster}" but this worker backs up "${config.cluster}": give each installation its own redis.prefix`,
      );
    }
    const lock = await tryLock(redis, lockKey, lockMs, owner);
    if (lock === undefined) {
      jobLog.debug(
        config.drill.executor === 'job'
          ? 'another drill of this cluster is running; this one waits'
          : 'a snapshot (or drill) of this cluster is running; the drill waits',
      );
      await job.moveToDelayed(Date.now() + lockRetryMs, token);
      throw new DelayedError();
    }
    const controller = new AbortController();
    current = controller;
    const renewal = keepClusterLock(lock, lockMs, controller, jobLog);
    try {
      const wanted = job.data.snapshotId;
      let target: Manifest | undefined;
      if (wanted === undefined) {
        [target] = await listSnapshots(store, config.cluster);
        if (!target) {
          jobLog.info('scheduled drill: no snapshots of this cluster yet');
          return { skipped: 'no snapshots yet' };
        }
      } else {
        target = await findSnapshot(store, config.cluster, wanted).catch((err: unknown) => {
          if (err instanceof SnapshotNotFoundError) return undefined;
          throw err;
        });
        if (!target) {
          // Pruned (or deleted) before its turn came: nothing left to prove.
          jobLog.info({ id: wanted }, 'drill after snapshot: the snapshot is no longer stored');
          return { skipped: 'the snapshot is no longer stored' };
        }
      }
      const record = await drill(target, jobLog, controller.signal);
      if (controller.signal.aborted) {
        // Stopped by a shutdown or a lost lock: says nothing about the snapshot, so no record.
        throw new Error(`drill of ${target.id} interrupted: ${messageOf(controller.signal.reason)}`);
      }
      if (metrics) recordDrillMetrics(metrics, record);
      await saveDrillRecord(store, record);
      options.notifier?.drillFinished(record);
      return {
        id: record.id,
        ok: record.ok,
        at: record.at,
        durationMs: record.durationMs,
        ...(record.failure !== undefined ? { failure: record.failure } : {}),
      };
    } finally {
      clearInterval(renewal);
      current = undefined;
      await releaseClusterLock(lock, jobLog);
    }
  };

  const workerRedis = connectRedis(config.redis, 'worker');
  workerRedis.on('error', () => undefined);
  const worker = new Worker<DrillJobData, DrillJobResult>(DRILL_QUEUE_NAME, processor, {
    connection: workerRedis,
    prefix: config.redis.prefix,
    concurrency: 1,
    lockDuration: lockMs,
    stalledInterval: Math.max(1000, Math.round(lockMs / 2)),
    maxStalledCount: 1,
    autorun: false,
  });
  worker.on('error', (err) => log.warn({ err: messageOf(err) }, 'drill queue worker error'));
  worker.on('failed', (job, err) =>
    log.error({ drillJobId: job?.id, err: messageOf(err) }, 'scheduled drill could not run'),
  );
  try {
    await untilAborted(syncDrillSchedule(queue, config), options.signal);
  } catch (err) {
    redis.disconnect();
    workerRedis.disconnect();
    void worker.close(true).catch(() => undefined);
    void queue.close().catch(() => undefined);
    throw new Error(`setting up the drill.schedule scheduler failed: ${messageOf(err)}`, { cause: err });
  }
  void worker.run().catch((err: unknown) => log.error({ err: messageOf(err) }, 'drill queue worker stopped'));
  let closing = false;
  // A Redis restarted empty lost the scheduler too: set it again on reconnect.
  redis.on('ready', () => {
    if (closing) return;
    syncDrillSchedule(queue, config).catch((err: unknown) =>
      log.warn({ err: messageOf(err) }, 'restoring the drill.schedule scheduler after a reconnect failed'),
    );
  });
  return {
    worker,
    enqueue: (manifest) => enqueueSnapshotDrill(queue, config.cluster, manifest.id),
    async close() {
      closing = true;
      // A running drill is stopped (its etcd killed, scratch removed) and its record says so; the next tick drills again.
      current?.abort(new Error('worker shutting down'));
      await worker.close().catch(() => undefined);
      await queue.close().catch(() => undefined);
      await redis.quit().catch(() => redis.disconnect());
      await workerRedis.quit().catch(() => workerRedis.disconnect());
    },
  };
}

/**
 * `drill.schedule: 0`: removes a scheduler an earlier config left, so its ticks do not pile up
 * unprocessed. Best effort: the caller logs a failure.
 */
export async function clearDrillSchedule(config: Pick<Config, 'cluster' | 'drill' | 'redis'>): Promise<void> {
  const redis = connectRedis(config.redis, 'producer');
  redis.on('error', () => undefined);
  const queue = createDrillQueue(config, redis);
  try {
    await queue.removeJobScheduler(drillScheduleId(config.cluster));
  } finally {
    await queue.close().catch(() => undefined);
    await redis.quit().catch(() => redis.disconnect());
  }
}
