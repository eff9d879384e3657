import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Config } from '../../core/config/index.js';
import { drillSchema } from '../../core/config/schema.js';
import { createMetrics } from '../../core/metrics.js';
import { clusterLockKey, connectRedis, tryLock } from '../../core/queue/index.js';
import { takeBackup } from '../../worker/backup.js';
import { readDrillRecord } from '../../worker/drill.js';
import {
  createDrillQueue,
  drillScheduleId,
  startDrillScheduler,
  type DrillJobResult,
} from '../../worker/drill-schedule.js';
import { fillEtcd } from '../support/etcd.js';
import { waitFor } from '../support/ports.js';
import { withStack, type Stack } from '../support/queue-stack.js';
import { tempDir } from '../support/tmp.js';

async function drillConfig(
  stack: Stack,
  scheduleMs: number,
  cleanup: (c: () => Promise<void>) => void,
): Promise<Config> {
  const scratch = await tempDir('drill-scratch');
  cleanup(scratch.remove);
  return {
    ...stack.config(),
    drill: drillSchema.parse({ schedule: scheduleMs, scratchDir: scratch.path, freeSpaceMargin: 0 }),
  };
}

async function drillsRun(metrics: ReturnType<typeof createMetrics>[]): Promise<number> {
  let n = 0;
  for (const m of metrics) for (const v of (await m.drills.get()).values) n += v.value;
  return n;
}

test('drill.schedule with two workers on one Redis: exactly one drill per tick, never two at once', async () => {
  await withStack(async (stack, cleanup) => {
    await fillEtcd(stack.etcd.client, 40, 16, '/registry/pods/ns/');
    const config = await drillConfig(stack, 1500, cleanup);
    const manifest = await takeBackup({ config, store: stack.store, log: stack.log, cause: { source: 'manual' } });
    const metrics = [createMetrics({ defaultMetrics: false }), createMetrics({ defaultMetrics: false })];
    // Two schedulers, each with its own Redis connections: two worker processes as far as BullMQ and the lock know.
    for (const m of metrics) {
      const s = await startDrillScheduler({ config, store: stack.store, log: stack.log, metrics: m, lockRetryMs: 200 });
      cleanup(() => s.close());
    }
    const redis = connectRedis(config.redis, 'worker');
    cleanup(() => Promise.resolve(redis.disconnect()));
    const queue = createDrillQueue(config, redis);
    cleanup(() => queue.close());

    const done = await waitFor(
      'four scheduled drills',
      async () => {
        const jobs = await queue.getJobs(['completed']);
        return jobs.length >= 4 ? jobs : undefined;
      },
      120_000,
    );
    const counted = await queue.getJobs(['completed', 'failed', 'active']);
    const ticks = counted.map((j) => Number(/:(\d+)$/.exec(j.id ?? '')?.[1]));
    assert.ok(
      ticks.every((t) => Number.isFinite(t)),
      `scheduler jobs carry their tick: ${counted.map((j) => j.id).join(', ')}`,
    );
    assert.equal(new Set(ticks).size, ticks.length, 'one job per tick');
    const sorted = [...ticks].sort((a, b) => a - b);
    for (let i = 1; i < sorted.length; i++)
      assert.equal((sorted[i]! - sorted[0]!) % 1500, 0, 'ticks are whole schedule periods apart');
    assert.equal(
      (await queue.getJobs(['failed'])).length,
      0,
      (await queue.getJobs(['failed'])).map((j) => j.failedReason).join('; '),
    );

    // When each drill really ran (its record's start and duration), not when BullMQ first took the job.
    const runs = done
      .map((j) => j.returnvalue)
      .map((r) => ('at' in r ? { from: Date.parse(r.at), to: Date.parse(r.at) + r.durationMs } : { from: 0, to: 0 }))
      .sort((a, b) => a.from - b.from);
    for (let i = 1; i < runs.length; i++)
      assert.ok(runs[i]!.from >= runs[i - 1]!.to, 'no two drills of the cluster at once');
    for (const j of done) {
      const result: DrillJobResult = j.returnvalue;
      assert.deepEqual('id' in result ? [result.id, result.ok] : result, [manifest.id, true]);
    }
    const record = await readDrillRecord(stack.store, config.cluster, manifest.id);
    assert.equal(record?.ok, true);
    const scheduler = await queue.getJobScheduler(drillScheduleId(config.cluster));
    assert.equal(scheduler?.every, 1500, 'one scheduler for the cluster, set by both workers');
    // Every drill a worker ran is a completed job (none ran twice for one tick); the current tick may still run.
    const ran = await drillsRun(metrics);
    assert.ok(ran >= done.length && ran <= done.length + 1, `${ran} drills run for ${done.length} completed jobs`);
  });
});

test('a scheduled drill waits while a snapshot holds the cluster lock, then runs', async () => {
  await withStack(async (stack, cleanup) => {
    const config = await drillConfig(stack, 60_000, cleanup);
    const manifest = await takeBackup({ config, store: stack.store, log: stack.log, cause: { source: 'manual' } });
    const redis = connectRedis(config.redis, 'worker');
    cleanup(() => Promise.resolve(redis.disconnect()));
    const lock = await tryLock(redis, clusterLockKey(config.redis.prefix, config.cluster), 60_000, 'a snapshot');
    assert.ok(lock);
    const scheduler = await startDrillScheduler({ config, store: stack.store, log: stack.log, lockRetryMs: 200 });
    cleanup(() => scheduler.close());
    const queue = createDrillQueue(config, redis);
    cleanup(() => queue.close());

    // The first tick's job is taken, finds the lock held and goes back to the delayed set, again and again.
    await waitFor('the drill to park behind the lock', async () => {
      const delayed = await queue.getJobs(['delayed']);
      return delayed.some((j) => j.attemptsStarted > 0);
    });
    assert.equal(await readDrillRecord(stack.store, config.cluster, manifest.id), undefined, 'no drill under the lock');
    await lock.release();
    const [job] = await waitFor('the drill to run', async () => {
      const jobs = await queue.getJobs(['completed']);
      return jobs.length > 0 ? jobs : undefined;
    });
    const result = job?.returnvalue;
    assert.ok(result && 'ok' in result, 'the drill ran');
    assert.deepEqual([result.id, result.ok], [manifest.id, true]);
    assert.equal((await readDrillRecord(stack.store, config.cluster, manifest.id))?.ok, true);
  });
});
