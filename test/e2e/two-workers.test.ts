/**
 * Two `etcd-autobackup worker` processes on one Redis and one etcd: the cluster lock in Redis is
 * all that keeps them from snapshotting the same cluster at once, and each debounce window gets
 * exactly one snapshot whichever process takes it. The etcd proxy holds the first snapshot, so
 * the second window's job certainly comes due while it runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../core/config/index.js';
import { createQueueRecorder, windowId, type QueueRecorder } from '../../core/queue/index.js';
import type { Manifest } from '../../worker/manifest.js';
import { waitFor } from '../support/ports.js';
import type { CliProcess } from '../support/processes.js';
import { CLUSTER, fillRandom, nextWindow, startE2eStack, waitQueueIdle, withTimeout } from './stack.js';

const WINDOW_MS = 2_000;
/** Past this many bytes on one connection the proxy holds the snapshot (the database is ~3 MiB). */
const HOLD_AFTER = 512 * 1024;

test(
  'two worker processes never snapshot the same cluster at once; each window gets exactly one snapshot',
  { timeout: 150_000 },
  async () => {
    const stack = await startE2eStack({ holdProxy: true });
    const fail = (err: unknown): never => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${stack.describe()}`);
    };
    const recorders: QueueRecorder[] = [];
    try {
      const proxy = stack.proxy;
      assert.ok(proxy);
      await fillRandom(stack.etcd.client, 300, 10 * 1024);
      // Debug logs show a worker finding the cluster busy.
      const flags = [...stack.flags({ windowMs: WINDOW_MS, endpoint: proxy.endpoint }), '--log-level', 'debug'];
      const workers = await Promise.all(
        ['a', 'b'].map((n) => stack.processes.start('worker', flags, { name: `worker-${n}` })),
      );
      // Two webhook replicas, as far as the queue knows: each its own recorder and Redis connection.
      const config = configSchema.parse({
        cluster: CLUSTER,
        redis: { url: stack.redis.url },
        queue: { debounceWindow: WINDOW_MS },
      });
      for (let i = 0; i < 2; i++) recorders.push(createQueueRecorder({ config }));
      const record = (n: number, tag: string) => {
        for (let i = 0; i < n; i++)
          for (const r of recorders) r.record({ source: 'audit', resource: `pods ${tag}-${i}`, at: new Date() });
      };

      const holding = proxy.holdNext(HOLD_AFTER);
      const first = await nextWindow(WINDOW_MS);
      record(3, 'first');
      await withTimeout(holding, 60_000, () => `the first snapshot to start\n${stack.describe()}`);
      const starting = (w: CliProcess) => w.logs().filter((l) => l.msg === 'snapshot starting');
      const holder = workers.find((w) => starting(w).length > 0);
      assert.ok(holder, stack.describe());
      const other = workers.find((w) => w !== holder) as CliProcess;

      // Changes of the next window; its job comes due while the first snapshot is held, and only
      // the other process is free to take it.
      const second = await nextWindow(WINDOW_MS);
      record(2, 'second');
      await other
        .waitForLog(
          (l) => l.msg === 'another snapshot of this cluster is running; waiting' && l.window === second.id,
          "the other process to find the cluster locked for the second window's job",
          30_000,
        )
        .catch(fail);
      assert.equal(
        workers.reduce((n, w) => n + starting(w).length, 0),
        1,
        `one snapshot under way across both processes\n${stack.describe()}`,
      );
      assert.deepEqual(await stack.list(), [], 'nothing published while the first snapshot is held');
      proxy.release();

      await waitFor('two snapshots', async () => (await stack.list()).length >= 2, 60_000, 500).catch(fail);
      await waitFor('the recorders to have sent every trigger', () =>
        Promise.resolve(recorders.every((r) => r.status().pendingTriggers === 0)),
      ).catch(fail);
      const queue = stack.queue();
      await waitQueueIdle(queue, 'the queue to drain').catch(fail);

      const snapshots = (await stack.list()).reverse();
      assert.equal(
        snapshots.length,
        2,
        `one snapshot per window: ${JSON.stringify(snapshots.map((m) => m.cause))}\n${stack.describe()}`,
      );
      const [a, b] = snapshots as [Manifest, Manifest];
      assert.equal(a.cause.window, windowId(first.start));
      assert.deepEqual(a.cause.counts, { audit: 6 }, 'both replicas’ triggers of the window, counted once');
      assert.equal(b.cause.window, windowId(second.start));
      assert.deepEqual(b.cause.counts, { audit: 4 });
      assert.ok(
        Date.parse(b.createdAt) >= Date.parse(a.createdAt) + a.durationMs,
        'the second snapshot started after the first had finished',
      );
      const published = workers.reduce((n, w) => n + w.logs().filter((l) => l.msg === 'snapshot published').length, 0);
      assert.equal(published, 2, 'no process published a window twice');

      const completed = await queue.getJobs(['completed']);
      assert.deepEqual(
        completed.map((j) => j.id).sort(),
        [`${CLUSTER}@${first.id}`, `${CLUSTER}@${second.id}`],
        'one job per window',
      );
      assert.ok(
        completed.every((j) => j.attemptsMade <= 1),
        'waiting for the lock spends no attempt',
      );
      assert.equal((await queue.getJobs(['failed'])).length, 0);
    } finally {
      await Promise.all(recorders.map((r) => r.close()));
      await stack.stop();
    }
  },
);
