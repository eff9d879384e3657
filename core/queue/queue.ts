/**
 * The one BullMQ queue of snapshot jobs: its name, job options from `config.queue`, the
 * `maxInterval` job scheduler and manual jobs. Shared by the webhook (producer), the worker pool
 * and the CLI.
 */
import { randomBytes } from 'node:crypto';
import { Queue, type DefaultJobOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config/index.js';
import type { SnapshotJobData, SnapshotJobResult } from './contract.js';
import { manualJobId } from './window.js';

export const QUEUE_NAME = 'snapshots';
export const JOB_NAME = 'snapshot';

// Names typed as string: BullMQ types scheduler ids with the job-name parameter.
export type SnapshotQueue = Queue<SnapshotJobData, SnapshotJobResult, string>;

/** `queue.attempts: 0`: as good as unlimited (BullMQ needs a number; this is decades at backoffMax). */
export const UNLIMITED_ATTEMPTS = 1_000_000_000;
/** The backoff type of our jobs; the worker computes its delay with `retryDelay`. */
export const BACKOFF_TYPE = 'capped-exponential';

/** Retries with capped exponential backoff; finished jobs kept for the dashboard, failed ones with their error. */
export function jobOptions(queue: Config['queue']): DefaultJobOptions {
  return {
    attempts: queue.attempts === 0 ? UNLIMITED_ATTEMPTS : queue.attempts,
    backoff: { type: BACKOFF_TYPE, delay: queue.backoff },
    removeOnComplete: { count: queue.keepJobs },
    removeOnFail: { count: queue.keepJobs },
  };
}

/**
 * The delay before the next attempt after `attemptsMade` failed ones: doubling from `backoffMs`,
 * never above `maxMs`, so a long store outage is retried every `maxMs` rather than given up.
 */
export function retryDelay(attemptsMade: number, backoffMs: number, maxMs: number): number {
  const exp = Math.min(Math.max(attemptsMade - 1, 0), 40);
  return Math.min(backoffMs * 2 ** exp, Math.max(maxMs, backoffMs));
}

export function createSnapshotQueue(config: Pick<Config, 'redis' | 'queue'>, connection: Redis): SnapshotQueue {
  const queue: SnapshotQueue = new Queue<SnapshotJobData, SnapshotJobResult, string>(QUEUE_NAME, {
    connection,
    prefix: config.redis.prefix,
    defaultJobOptions: jobOptions(config.queue),
  });
  // Connection errors surface through the callers' rejected commands; an unhandled 'error'
  // event would crash the process instead.
  queue.on('error', () => undefined);
  return queue;
}

/** The queue of scheduled drills (worker/drill-schedule.ts) and its scheduler id; here so `status` reads it too. */
export const DRILL_QUEUE_NAME = 'drills';
export function drillScheduleId(cluster: string): string {
  return `drill-${cluster}`;
}

export function scheduleId(cluster: string): string {
  return `max-interval-${cluster}`;
}

/**
 * Makes the `maxInterval` schedule match the config: a BullMQ job scheduler producing one
 * snapshot job every `maxInterval`, or none when it is 0. Idempotent; every worker calls it at start.
 */
export async function syncSchedule(queue: SnapshotQueue, config: Pick<Config, 'cluster' | 'queue'>): Promise<void> {
  const id = scheduleId(config.cluster);
  if (config.queue.maxInterval === 0) {
    await queue.removeJobScheduler(id);
    return;
  }
  const existing = await queue.getJobScheduler(id);
  // Re-upserting an unchanged `every` schedule would enqueue a snapshot at every worker restart.
  if (existing?.every === config.queue.maxInterval) return;
  await queue.upsertJobScheduler(
    id,
    { every: config.queue.maxInterval },
    {
      name: JOB_NAME,
      data: { cluster: config.cluster, window: 'schedule', causes: { schedule: 1 }, samples: [], source: 'schedule' },
      opts: jobOptions(config.queue),
    },
  );
}

export interface ManualCause {
  /** Who asked, e.g. `cli` or the HTTP client; kept as a sample. */
  resource?: string;
}

/** Adds a snapshot job that runs as soon as a worker (and the cluster's lock) is free; returns its id. */
export async function enqueueManual(
  queue: SnapshotQueue,
  cluster: string,
  cause: ManualCause = {},
  now: () => Date = () => new Date(),
): Promise<string> {
  const at = now().getTime();
  const jobId = manualJobId(cluster, at, randomBytes(3).toString('hex'));
  const data: SnapshotJobData = {
    cluster,
    window: jobId.slice(cluster.length + 1),
    causes: { manual: 1 },
    samples: cause.resource ? [cause.resource] : [],
    source: 'manual',
  };
  const job = await queue.add(JOB_NAME, data, { jobId });
  return job.id ?? jobId;
}
