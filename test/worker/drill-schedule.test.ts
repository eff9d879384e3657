import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type Config } from '../../core/config/index.js';
import { drillSchema } from '../../core/config/schema.js';
import { createMetrics } from '../../core/metrics.js';
import { clusterLockKey, connectRedis, drillLockKey, tryLock } from '../../core/queue/index.js';
import { takeBackup } from '../../worker/backup.js';
import { newDrillRecord, readDrillRecord, settleRecord, type DrillRecord } from '../../worker/drill.js';
import { drillAfterSnapshot, drillQueuedAfterSnapshot } from '../../worker/drill-hook.js';
import type { DrillRunner } from '../../worker/drill-runner.js';
import {
  afterSnapshotDrillJobId,
  createDrillQueue,
  drillLockKeyFor,
  drillScheduleId,
  enqueueSnapshotDrill,
  startDrillScheduler,
  type DrillJobResult,
} from '../../worker/drill-schedule.js';
import type { Manifest } from '../../worker/manifest.js';
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

test('decisions: a drill Job takes the drill lock and is queued after a snapshot; a local drill keeps the snapshot lock, inline', () => {
  const of = (executor: 'local' | 'job') => ({
    cluster: 'prod-1',
    redis: { prefix: 'eab' },
    drill: drillSchema.parse({ executor }),
  });
  assert.equal(drillLockKeyFor(of('local')), clusterLockKey('eab', 'prod-1'));
  assert.equal(drillLockKeyFor(of('job')), drillLockKey('eab', 'prod-1'));
  assert.notEqual(drillLockKey('eab', 'prod-1'), clusterLockKey('eab', 'prod-1'));
  assert.equal(drillQueuedAfterSnapshot(of('local').drill), false);
  assert.equal(drillQueuedAfterSnapshot(of('job').drill), true);
  assert.equal(
    afterSnapshotDrillJobId('prod-1', '20261203T000000Z-r1-abcd'),
    afterSnapshotDrillJobId('prod-1', '20261203T000000Z-r1-abcd'),
  );
  assert.notEqual(
    afterSnapshotDrillJobId('prod-1', '20261203T000000Z-r1-abcd'),
    afterSnapshotDrillJobId('prod-1', '20261203T000000Z-r2-abcd'),
  );
});

/**
 * The drill Job's runner as far as the lock is concerned: it notes who ran at once and, while it
 * runs, what Redis holds (the drill Job itself is tested in drill-job.test.ts).
 */
function observedRunner(redis: ReturnType<typeof connectRedis>, config: Config) {
  const seen = { running: 0, most: 0, drilled: [] as string[], drillLockHeld: [] as boolean[] };
  const runner: DrillRunner = async (manifest: Manifest) => {
    seen.running++;
    seen.most = Math.max(seen.most, seen.running);
    seen.drillLockHeld.push((await redis.get(drillLockKey(config.redis.prefix, config.cluster))) !== null);
    // Long enough for another worker to try the same cluster meanwhile.
    await new Promise((r) => setTimeout(r, 300));
    seen.drilled.push(manifest.id);
    seen.running--;
    const record: DrillRecord = {
      ...newDrillRecord(manifest, new Date()),
      executor: { kind: 'job', job: 'j', run: 'r', etcdImage: 'e' },
    };
    record.checks.push({ name: 'job', ok: true, detail: 'the stand-in drill Job passed' });
    settleRecord(record);
    return record;
  };
  return { seen, runner };
}

test('drill.executor job: a snapshot holding the cluster lock does not hold up drills; two workers never run two drills of the cluster at once', async () => {
  await withStack(async (stack, cleanup) => {
    const base = await drillConfig(stack, 60_000, cleanup);
    const config: Config = { ...base, drill: { ...base.drill, executor: 'job' } };
    const manifests: Manifest[] = [];
    for (let i = 0; i < 3; i++) {
      await stack.etcd.client.put('/registry/drill-test').value(String(i));
      manifests.push(await takeBackup({ config, store: stack.store, log: stack.log, cause: { source: 'manual' } }));
    }
    const redis = connectRedis(config.redis, 'worker');
    cleanup(() => Promise.resolve(redis.disconnect()));
    // A snapshot of the cluster runs (its lock is taken) for the whole test.
    const snapshotLock = await tryLock(
      redis,
      clusterLockKey(config.redis.prefix, config.cluster),
      120_000,
      'a snapshot',
    );
    assert.ok(snapshotLock);
    cleanup(() => snapshotLock.release());
    const { seen, runner } = observedRunner(redis, config);
    // Two workers: the scheduler's first tick plus three queued after-snapshot drills.
    for (let i = 0; i < 2; i++) {
      const s = await startDrillScheduler({ config, store: stack.store, log: stack.log, lockRetryMs: 100, runner });
      cleanup(() => s.close());
      if (i === 0) for (const m of manifests) await s.enqueue(m);
    }
    const queue = createDrillQueue(config, redis);
    cleanup(() => queue.close());
    const done = await waitFor(
      'the tick and the three queued drills',
      async () => {
        const jobs = await queue.getJobs(['completed']);
        return jobs.length >= 4 ? jobs : undefined;
      },
      60_000,
    );
    assert.equal((await queue.getJobs(['failed'])).length, 0);
    assert.equal(seen.most, 1, 'never two drills of the cluster at once');
    assert.ok(seen.drillLockHeld.every(Boolean), 'each drill ran holding the drill lock');
    assert.deepEqual(
      [...seen.drilled].sort(),
      [...manifests.map((m) => m.id), manifests[2]?.id].sort(),
      'each queued snapshot, and the newest for the tick',
    );
    assert.equal(done.length, 4);
    assert.equal(
      (await redis.get(clusterLockKey(config.redis.prefix, config.cluster))) !== null,
      true,
      'the snapshot lock was never taken from the snapshot',
    );
    for (const m of manifests) assert.equal((await readDrillRecord(stack.store, config.cluster, m.id))?.ok, true, m.id);
  });
});

test('drill.executor job: the after-snapshot hook queues the drill once per snapshot and returns without running it', async () => {
  await withStack(async (stack, cleanup) => {
    const base = await drillConfig(stack, 0, cleanup);
    const config: Config = { ...base, drill: { ...base.drill, executor: 'job', afterSnapshot: 1 } };
    const [first, second] = [
      await takeBackup({ config, store: stack.store, log: stack.log, cause: { source: 'manual' } }),
      await takeBackup({ config, store: stack.store, log: stack.log, cause: { source: 'manual' } }),
    ];
    assert.ok(first && second);
    const redis = connectRedis(config.redis, 'worker');
    cleanup(() => Promise.resolve(redis.disconnect()));
    const queue = createDrillQueue(config, redis);
    cleanup(() => queue.close());
    assert.throws(() => drillAfterSnapshot({ config, store: stack.store }), /needs the drills queue/);
    const hook = drillAfterSnapshot({
      config,
      store: stack.store,
      enqueue: (m) => enqueueSnapshotDrill(queue, config.cluster, m.id),
    });
    // No worker takes the drills queue yet: if the hook waited for its drill, it would never return.
    await hook(first, stack.log);
    await hook(first, stack.log);
    await hook(second, stack.log);
    const waiting = await queue.getJobs(['waiting']);
    assert.deepEqual(
      waiting.map((j) => [j.id, j.data.snapshotId]).sort(),
      [
        [afterSnapshotDrillJobId(config.cluster, first.id), first.id],
        [afterSnapshotDrillJobId(config.cluster, second.id), second.id],
      ].sort(),
      'one drill job per snapshot',
    );
    assert.equal(await readDrillRecord(stack.store, config.cluster, first.id), undefined, 'nothing drilled inline');

    // A worker then drills exactly those snapshots (the older one too, not only the newest).
    const { seen, runner } = observedRunner(redis, config);
    const s = await startDrillScheduler({ config, store: stack.store, log: stack.log, lockRetryMs: 100, runner });
    cleanup(() => s.close());
    await waitFor('both queued drills', async () =>
      (await queue.getJobs(['completed'])).length >= 2 ? true : undefined,
    );
    assert.deepEqual([...seen.drilled].sort(), [first.id, second.id].sort());
    assert.equal((await readDrillRecord(stack.store, config.cluster, first.id))?.ok, true);
  });
});
