/** A one-off manual snapshot job from a short-lived process (`etcd-autobackup snapshot --enqueue`). */
import type { Config } from '../config/index.js';
import { messageOf } from '../errors.js';
import { connectRedis, describeRedis } from './connection.js';
import { createSnapshotQueue, enqueueManual, type ManualCause } from './queue.js';

/**
 * Adds the job, or fails after `queue.enqueueTimeout` (or when `signal` aborts): BullMQ waits for
 * a ready connection, which never comes while Redis is down or refuses the password.
 */
export async function enqueueSnapshot(
  config: Pick<Config, 'cluster' | 'redis' | 'queue'>,
  cause: ManualCause,
  signal?: AbortSignal,
): Promise<string> {
  const redis = connectRedis(config.redis, 'producer');
  let lastError: unknown;
  redis.on('error', (err) => (lastError = err));
  const queue = createSnapshotQueue(config, redis);
  const where = describeRedis(config.redis);
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const givenUp = new Promise<never>((_resolve, reject) => {
    const seconds = config.queue.enqueueTimeout / 1000;
    timer = setTimeout(() => {
      const why = lastError === undefined ? '' : ` (last error: ${messageOf(lastError)})`;
      reject(new Error(`Redis at ${where} did not take the job within ${seconds}s${why}`));
    }, config.queue.enqueueTimeout);
    onAbort = () => reject(new Error(`interrupted while waiting for Redis at ${where}`));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([enqueueManual(queue, config.cluster, cause), givenUp]);
  } catch (err) {
    throw new Error(
      `cannot queue the snapshot on ${where}: ${messageOf(err)} (check redis.url / --redis-url, redis.password, queue.enqueueTimeout)`,
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    // Disconnect first: closing the queue waits for a ready connection otherwise.
    redis.disconnect();
    await queue.close().catch(() => undefined);
  }
}
