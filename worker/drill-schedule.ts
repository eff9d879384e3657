/**
 * `drill.schedule`: a BullMQ job scheduler on a queue of its own (`drills`) that drills the
 * cluster's newest snapshot every tick. Every worker upserts the same scheduler id, and BullMQ
 * makes one job per tick whatever the number of workers. The drill runs under the cluster's
 * snapshot lock (the one snapshots take, core/queue/lock.ts): no drill overlaps a snapshot of
 * the cluster or another drill, and a drill that finds the lock taken waits in the delayed set,
 * as a snapshot job does. A snapshot arriving meanwhile waits for the drill the same way.
 */
import { hostname } from 'node:os';
import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../core/config/index.js';
import { messageOf } from '../core/errors.js';
import type { Metrics } from '../core/metrics.js';
import {
  clusterLockKey,
  connectRedis,
  drillScheduleId,
  keepClusterLock,
  releaseClusterLock,
  tryLock,
  DRILL_QUEUE_NAME,
} from '../core/queue/index.js';
import { listSnapshots } from './catalog.js';
import { recordDrillMetrics, saveDrillRecord } from './drill.js';
import { drillRunnerFor, type DrillRunnerConfig } from './drill-runner.js';
import type { Notifier } from './notify/notifier.js';
import type { Store } from './stores/store.js';

export { DRILL_QUEUE_NAME, drillScheduleId };
export const DRILL_JOB_NAME = 'drill';

export interface DrillJobData {
  cluster: string;
}

/** What a scheduled drill job returns (kept on the completed job; `status` shows the last one). */
export type DrillJobResult =
  { id: string; ok: boolean; failure?: string; at: string; durationMs: number } | { skipped: 'no snapshots yet' };

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
}

export interface DrillScheduler {
  readonly worker: Worker<DrillJobData, DrillJobResult>;
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
  const drill = drillRunnerFor(config, store);

  const processor = async (job: Job<DrillJobData, DrillJobResult>, token?: string): Promise<DrillJobResult> => {
    const jobLog = log.child({ drillJobId: job.id });
    if (job.data.cluster !== config.cluster) {
      throw new UnrecoverableError(
        `drill job is for cluster "${job.data.cluster}" but this worker backs up "${config.cluster}": give each installation its own redis.prefix`,
      );
    }
    const lock = await tryLock(redis, clusterLockKey(config.redis.prefix, config.cluster), lockMs, owner);
    if (lock === undefined) {
      jobLog.debug('a snapshot (or drill) of this cluster is running; the scheduled drill waits');
      await job.moveToDelayed(Date.now() + lockRetryMs, token);
      throw new DelayedError();
    }
    const controller = new AbortController();
    current = controller;
    const renewal = keepClusterLock(lock, lockMs, controller, jobLog);
    try {
      const [newest] = await listSnapshots(store, config.cluster);
      if (!newest) {
        jobLog.info('scheduled drill: no snapshots of this cluster yet');
        return { skipped: 'no snapshots yet' };
      }
      const record = await drill(newest, jobLog, controller.signal);
      if (controller.signal.aborted) {
        // Stopped by a shutdown or a lost lock: says nothing about the snapshot, so no record.
        throw new Error(`scheduled drill of ${newest.id} interrupted: ${messageOf(controller.signal.reason)}`);
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
    await syncDrillSchedule(queue, config);
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
