/**
 * What the queue knows about a cluster, read without changing anything: job counts, the two
 * schedulers, the windows holding triggers not yet in a snapshot, the jobs waiting to run and the
 * newest failed attempt. For `etcd-autobackup status`; bounded by `queue.enqueueTimeout` so a
 * Redis that is down or refuses the password gives an answer saying so, not a hang.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config/index.js';
import { messageOf } from '../errors.js';
import { connectRedis, describeRedis } from './connection.js';
import { openWindows, type Counts, type OpenWindow } from './ledger.js';
import { createSnapshotQueue, drillScheduleId, scheduleId, DRILL_QUEUE_NAME } from './queue.js';

export interface PendingJob {
  jobId: string;
  state: string;
  window: string;
  /** When it is due to run (ms): window end, retry backoff, or now. */
  runsAt: number;
  attemptsMade: number;
  causes: Counts;
  /** The last attempt's error, when it failed before. */
  lastError?: string;
}

export interface FailedAttempt {
  jobId: string;
  at: number;
  reason: string;
  attemptsMade: number;
  /** True when the job will run again (it is still waiting or delayed). */
  retrying: boolean;
}

export type QueueStatus =
  | { reachable: false; redis: string; error: string }
  | {
      reachable: true;
      redis: string;
      snapshots: Record<string, number>;
      drills: Record<string, number>;
      /** Next run (ms) of the `queue.maxInterval` and `drill.schedule` schedulers; undefined when not set. */
      nextScheduledSnapshot?: number;
      nextScheduledDrill?: number;
      openWindows: OpenWindow[];
      pending: PendingJob[];
      lastFailure?: FailedAttempt;
    };

const STATES = ['waiting', 'delayed', 'prioritized', 'active', 'failed', 'completed'] as const;

export async function readQueueStatus(config: Pick<Config, 'cluster' | 'redis' | 'queue'>): Promise<QueueStatus> {
  const where = describeRedis(config.redis);
  const redis = connectRedis(config.redis, 'producer');
  let lastError: unknown;
  redis.on('error', (err) => (lastError = err));
  const snapshots = createSnapshotQueue(config, redis);
  const drills = new Queue(DRILL_QUEUE_NAME, { connection: redis, prefix: config.redis.prefix });
  drills.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  try {
    const givenUp = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `no answer within ${config.queue.enqueueTimeout / 1000}s (queue.enqueueTimeout)${lastError === undefined ? '' : `: ${messageOf(lastError)}`}`,
            ),
          ),
        config.queue.enqueueTimeout,
      );
    });
    return await Promise.race([read(redis, snapshots, drills, config, where), givenUp]);
  } catch (err) {
    return { reachable: false, redis: where, error: messageOf(err) };
  } finally {
    clearTimeout(timer);
    redis.disconnect();
    await Promise.all([snapshots.close().catch(() => undefined), drills.close().catch(() => undefined)]);
  }
}

async function read(
  redis: Redis,
  snapshots: ReturnType<typeof createSnapshotQueue>,
  drills: Queue,
  config: Pick<Config, 'cluster' | 'redis'>,
  where: string,
): Promise<QueueStatus> {
  // The first command waits for the connection (the producer has no offline queue).
  await new Promise<void>((resolve, reject) => {
    if (redis.status === 'ready') return resolve();
    redis.once('ready', () => resolve());
    redis.once('end', () => reject(new Error('connection closed')));
  });
  const pendingStates = ['waiting', 'delayed', 'prioritized', 'active'] as const;
  const [snapshotCounts, drillCounts, snapshotScheduler, drillScheduler, windows, failed, ...byState] =
    await Promise.all([
      snapshots.getJobCounts(...STATES),
      drills.getJobCounts(...STATES),
      snapshots.getJobScheduler(scheduleId(config.cluster)),
      drills.getJobScheduler(drillScheduleId(config.cluster)),
      openWindows(redis, config.redis.prefix, config.cluster),
      snapshots.getJobs(['failed'], 0, 20),
      ...pendingStates.map((state) => snapshots.getJobs([state])),
    ]);
  const tagged = byState.flatMap((jobs, i) =>
    jobs.filter((j) => j?.data.cluster === config.cluster).map((job) => ({ job, state: pendingStates[i] ?? '' })),
  );
  const mine = tagged.map((t) => t.job);
  const pending: PendingJob[] = tagged.map(({ job: j, state }) => ({
    jobId: j.id ?? '',
    state,
    window: j.data.window,
    runsAt: j.timestamp + (j.delay ?? 0),
    attemptsMade: j.attemptsMade,
    causes: j.data.causes,
    ...(j.failedReason ? { lastError: j.failedReason } : {}),
  }));
  const attempts: FailedAttempt[] = [
    ...mine
      .filter((j) => j.failedReason)
      .map((j) => ({
        jobId: j.id ?? '',
        at: j.finishedOn ?? j.processedOn ?? j.timestamp,
        reason: j.failedReason,
        attemptsMade: j.attemptsMade,
        retrying: true,
      })),
    ...failed
      .filter((j) => j?.data.cluster === config.cluster)
      .map((j) => ({
        jobId: j.id ?? '',
        at: j.finishedOn ?? j.timestamp,
        reason: j.failedReason,
        attemptsMade: j.attemptsMade,
        retrying: false,
      })),
  ].sort((a, b) => b.at - a.at);
  return {
    reachable: true,
    redis: where,
    snapshots: snapshotCounts,
    drills: drillCounts,
    ...(snapshotScheduler?.next !== undefined ? { nextScheduledSnapshot: snapshotScheduler.next } : {}),
    ...(drillScheduler?.next !== undefined ? { nextScheduledDrill: drillScheduler.next } : {}),
    openWindows: windows,
    pending: pending.sort((a, b) => a.runsAt - b.runsAt),
    ...(attempts[0] ? { lastFailure: attempts[0] } : {}),
  };
}
