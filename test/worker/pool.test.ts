import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMetrics } from '../../core/metrics.js';
import { pino } from 'pino';
import { clusterLockKey, connectRedis, createQueueRecorder, scheduleId, syncSchedule } from '../../core/queue/index.js';
import { startWorkerPool } from '../../worker/pool.js';
import { waitFor } from '../support/ports.js';
import { GatedStore, waitIdle, waitManifests, withStack } from '../support/queue-stack.js';

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

test('a failed attempt is retried with backoff; a job out of attempts is kept failed with its error, nothing published', async () => {
  await withStack(async (stack, cleanup) => {
    const metrics = createMetrics({ defaultMetrics: false });
    const config = stack.config({ attempts: 2, backoff: 100 });
    const store = new GatedStore(stack.store);
    store.failNext = 1;
    const pool = await startWorkerPool({ config, store, log: stack.log, metrics });
    cleanup(() => pool.close());
    const recorder = createQueueRecorder({ config });
    cleanup(() => recorder.close());

    const retried = await recorder.enqueueNow();
    const [m] = await waitManifests(stack, 1);
    await waitIdle(recorder.queue);
    const job = await recorder.queue.getJob(retried);
    assert.equal(await job?.getState(), 'completed');
    assert.ok(m?.cause.source === 'manual');
    const failures = (await metrics.snapshotFailures.get()).values;
    assert.deepEqual(
      failures.map((v) => [v.labels.stage, v.value]),
      [['upload', 1]],
    );

    store.failNext = 2;
    const doomed = await recorder.enqueueNow();
    await waitFor(
      'the job to fail for good',
      async () => (await (await recorder.queue.getJob(doomed))?.getState()) === 'failed',
    );
    const failed = await recorder.queue.getJob(doomed);
    assert.equal(failed?.attemptsMade, 2);
    assert.match(failed?.failedReason ?? '', /upload.*injected store failure/);
    assert.equal((await stack.manifests()).length, 1, 'nothing published by the failed job');
    assert.equal((await filesUnder(stack.storeDir)).length, 2, 'no partial object left behind');
  });
});

test('the maxInterval scheduler snapshots with no change; 0 removes it', async () => {
  await withStack(async (stack, cleanup) => {
    const scheduled = stack.config({ maxInterval: 1_500 });
    const pool = await startWorkerPool({ config: scheduled, store: stack.store, log: stack.log });
    const manifests = await waitManifests(stack, 2);
    assert.ok(manifests.every((m) => m.cause.source === 'schedule' && m.cause.window === 'schedule'));
    const probe = createQueueRecorder({ config: scheduled });
    const before = await probe.queue.getJobScheduler(scheduleId('test'));
    await syncSchedule(probe.queue, scheduled);
    const after = await probe.queue.getJobScheduler(scheduleId('test'));
    assert.equal(after?.every, 1_500);
    assert.ok(
      after?.next !== undefined && before?.next !== undefined && after.next >= before.next,
      'a restart does not reset the schedule',
    );
    await probe.close();
    await pool.close();

    const config = stack.config({ maxInterval: 0 });
    const again = await startWorkerPool({ config, store: stack.store, log: stack.log });
    cleanup(() => again.close());
    const recorder = createQueueRecorder({ config });
    cleanup(() => recorder.close());
    assert.equal(await recorder.queue.getJobScheduler(scheduleId('test')), undefined);
    assert.equal(await recorder.queue.getJobSchedulersCount(), 0);
  });
});

test('close abandons a slow snapshot cleanly: nothing published, the job runs again on the next worker', async () => {
  await withStack(async (stack, cleanup) => {
    const config = stack.config();
    const store = new GatedStore(stack.store);
    const held = store.hold();
    const pool = await startWorkerPool({ config, store, log: stack.log, graceMs: 300 });
    const recorder = createQueueRecorder({ config });
    cleanup(() => recorder.close());
    const id = await recorder.enqueueNow();
    await held.started;
    const closing = pool.close();
    await closing;
    held.release();
    assert.equal((await stack.manifests()).length, 0);
    const job = await recorder.queue.getJob(id);
    assert.notEqual(await job?.getState(), 'failed');
    assert.equal(job?.attemptsMade, 0, 'a shutdown spends no attempt');

    const next = await startWorkerPool({ config, store: stack.store, log: stack.log });
    cleanup(() => next.close());
    await waitManifests(stack, 1);
    await waitIdle(recorder.queue);
    assert.equal(await (await recorder.queue.getJob(id))?.getState(), 'completed');
    assert.equal((await stack.manifests()).length, 1);
  });
});

test('a worker process SIGKILLed mid-upload: the stalled job runs again and one complete snapshot results', async () => {
  await withStack(async (stack, cleanup) => {
    const config = stack.config();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('./pool-child.ts', import.meta.url))],
      {
        env: {
          ...process.env,
          POOL_CONFIG: JSON.stringify(config),
          POOL_STORE_DIR: stack.storeDir,
          POOL_LOCK_MS: '2000',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    cleanup(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the child worker to start', () => Promise.resolve(out.includes('ready')), 60_000);

    const recorder = createQueueRecorder({ config });
    cleanup(() => recorder.close());
    const id = await recorder.enqueueNow();
    await waitFor('the child to be uploading', () => Promise.resolve(out.includes('uploading')));
    const partial = (await filesUnder(stack.storeDir)).filter((f) => f.includes('.partial-'));
    assert.equal(partial.length, 1, 'the upload is under way');
    child.kill('SIGKILL');
    await exited;

    const pool = await startWorkerPool({
      config,
      store: stack.store,
      log: stack.log,
      lockDurationMs: 2_000,
      stalledIntervalMs: 500,
    });
    cleanup(() => pool.close());
    const [m] = await waitManifests(stack, 1);
    await waitIdle(recorder.queue);
    assert.equal(await (await recorder.queue.getJob(id))?.getState(), 'completed');
    const listed = await stack.store.list('');
    assert.deepEqual(
      listed.map((o) => o.key).sort(),
      [m!.key, m!.key.replace(/\.db(\.gz|\.zst)?$/, '.manifest.json')].sort(),
    );
  });
});

test('losing the cluster lock mid-snapshot: the snapshot stops unpublished, the new holder keeps the lock, the job runs again once it is free', async () => {
  await withStack(async (stack, cleanup) => {
    const lines: { msg?: string; err?: string }[] = [];
    const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as { msg?: string }) });
    const config = stack.config({ attempts: 0, backoff: 100 });
    const store = new GatedStore(stack.store);
    const held = store.hold();
    const pool = await startWorkerPool({ config, store, log, lockDurationMs: 1_500, lockRetryMs: 200 });
    cleanup(() => pool.close());
    const recorder = createQueueRecorder({ config });
    cleanup(() => recorder.close());
    const redis = connectRedis(config.redis, 'producer');
    cleanup(() => Promise.resolve(redis.disconnect()));

    const id = await recorder.enqueueNow();
    await held.started;
    // As if a Redis stall had let the lock expire and another worker had taken it.
    const key = clusterLockKey(config.redis.prefix, config.cluster);
    await redis.set(key, 'other-worker/1', 'PX', 60_000);
    const failed = await waitFor('the attempt to stop', () =>
      Promise.resolve(lines.find((l) => l.msg === 'snapshot job attempt failed; retrying')),
    );
    assert.match(
      failed.err ?? '',
      /lost the cluster lock \(it expired or another worker holds it now\).*nothing was published/,
    );
    assert.ok(
      lines.some(
        (l) =>
          l.msg === 'lost the cluster lock (it expired or another worker holds it now); stopping the work under it',
      ),
      JSON.stringify(lines),
    );
    assert.equal(await redis.get(key), 'other-worker/1', "the new holder's lock is left alone");
    assert.deepEqual(await stack.store.list(''), [], 'nothing published, nothing partial left');
    held.release();

    // The retry waits for the other holder, then takes the snapshot.
    await waitFor(
      'the retry to wait for the lock',
      async () => (await (await recorder.queue.getJob(id))?.getState()) === 'delayed',
    );
    assert.equal((await stack.manifests()).length, 0);
    await redis.del(key);
    const [m] = await waitManifests(stack, 1);
    await waitIdle(recorder.queue);
    assert.equal(await (await recorder.queue.getJob(id))?.getState(), 'completed');
    assert.deepEqual(
      (await stack.store.list('')).map((o) => o.key).sort(),
      [m!.key, m!.key.replace(/\.db(\.gz|\.zst)?$/, '.manifest.json')].sort(),
      'one snapshot: the stopped attempt published nothing',
    );
  });
});
