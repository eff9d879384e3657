/** A one-off manual snapshot job from a short-lived process (`etcd-autobackup snapshot --enqueue`). */
import type { Config } from '../config/index.js';
import { messageOf } from '../errors.js';
import { connectRedis, describeRedis } from './connection.js';
import { createSnapshotQueue, enqueueManual, type ManualCause } from './queue.js';

export async function enqueueSnapshot(
  config: Pick<Config, 'cluster' | 'redis' | 'queue'>,
  cause: ManualCause,
): Promise<string> {
  const redis = connectRedis(config.redis, 'producer');
  redis.on('error', () => undefined);
  const queue = createSnapshotQueue(config, redis);
  try {
    return await enqueueManual(queue, config.cluster, cause);
  } catch (err) {
    throw new Error(
      `cannot queue the snapshot on ${describeRedis(config.redis)}: ${messageOf(err)} (check redis.url / --redis-url)`,
      { cause: err },
    );
  } finally {
    await queue.close().catch(() => undefined);
    redis.disconnect();
  }
}
