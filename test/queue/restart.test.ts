import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  connectRedis,
  createQueueRecorder,
  createSnapshotQueue,
  scheduleId,
  windowOf,
} from '../../core/queue/index.js';
import { startWorkerPool } from '../../worker/pool.js';
import { waitFor } from '../support/ports.js';
import { withStack, waitIdle, waitManifests } from '../support/queue-stack.js';

const WINDOW = 8_000;

test('Redis restarted empty while a window job waits: the recorder enqueues it again, exactly one snapshot', async () => {
  await withStack(async (stack, cleanup) => {
    const config = stack.config({ debounceWindow: WINDOW });
    // The recorder's clock starts at a window's start, so the restart surely falls before its end.
    const offset = windowOf(Date.now(), WINDOW).end - Date.now();
    const recorder = createQueueRecorder({
      config,
      log: stack.log,
      flushIntervalMs: 100,
      settleMs: 500,
      now: () => new Date(Date.now() + offset),
    });
    cleanup(() => recorder.close());
    const pool = await startWorkerPool({ config, store: stack.store, log: stack.log, lockRetryMs: 200 });
    cleanup(() => pool.close());
    await recorder.queue.waitUntilReady();

    recorder.record({ source: 'audit', resource: 'shop/web', at: new Date() });
    recorder.record({ source: 'admission', resource: 'shop/db', at: new Date() });
    await recorder.flush();
    assert.equal((await recorder.queue.getJobs(['delayed'])).length, 1);

    // No persistence: the restarted server has neither the delayed job nor the ledger.
    await stack.redis.kill();
    await waitFor('the recorder to notice', () => Promise.resolve(!recorder.status().redisUp));
    await stack.redis.restart();
    await waitFor('the job to be enqueued again', async () => {
      const jobs = await recorder.queue.getJobs(['delayed', 'waiting', 'active', 'completed']);
      return jobs.length > 0;
    });

    const [m] = await waitManifests(stack, 1, 60_000);
    await waitIdle(recorder.queue, 60_000);
    assert.equal((await stack.manifests()).length, 1, 'exactly one snapshot');
    assert.ok(m);
    assert.deepEqual(m.cause.counts, { audit: 1, admission: 1 });
    assert.deepEqual([...(m.cause.samples ?? [])].sort(), ['shop/db', 'shop/web']);
  });
});

test('Redis restarted empty: the worker sets the maxInterval schedule again', async () => {
  await withStack(async (stack, cleanup) => {
    const config = stack.config({ maxInterval: 3_600_000 });
    const pool = await startWorkerPool({ config, store: stack.store, log: stack.log });
    cleanup(() => pool.close());
    const connection = connectRedis(config.redis, 'worker');
    connection.on('error', () => undefined);
    const queue = createSnapshotQueue(config, connection);
    cleanup(async () => {
      await queue.close();
      connection.disconnect();
    });
    assert.ok(await queue.getJobScheduler(scheduleId('test')));

    await stack.redis.kill();
    await stack.redis.restart();
    await waitFor(
      'the schedule to be set again',
      async () => (await queue.getJobScheduler(scheduleId('test'))) !== undefined,
    );
  });
});
