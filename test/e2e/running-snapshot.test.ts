/**
 * What happens around a snapshot that is under way, with the service as processes: a change that
 * arrives meanwhile gets a snapshot of its own after it, and SIGTERM stops the service without
 * leaving anything half-visible in the store. The etcd proxy holds the snapshot stream, so the
 * tests act while a snapshot is certainly running, however fast the machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { windowId } from '../../core/queue/index.js';
import type { Manifest } from '../../worker/manifest.js';
import { runCliOk } from '../support/cli.js';
import { waitFor } from '../support/ports.js';
import { readMetric, type CliProcess } from '../support/processes.js';
import {
  auditBatch,
  fillRandom,
  nextWindow,
  postJson,
  startE2eStack,
  waitQueueIdle,
  type E2eStack,
  withTimeout,
} from './stack.js';

const WINDOW_MS = 2_000;
/** Past this many bytes on one connection the proxy holds the snapshot (the database is ~3 MiB). */
const HOLD_AFTER = 512 * 1024;

function failWith(stack: E2eStack): (err: unknown) => never {
  return (err) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${stack.describe()}`);
  };
}

test(
  'a change that arrives while a snapshot runs gets one more snapshot, taken after the running one',
  { timeout: 120_000 },
  async () => {
    const stack = await startE2eStack({ holdProxy: true });
    const fail = failWith(stack);
    try {
      const proxy = stack.proxy;
      assert.ok(proxy);
      await fillRandom(stack.etcd.client, 300, 10 * 1024);
      const webhook = await stack.processes.start('webhook', stack.flags({ windowMs: WINDOW_MS }), { name: 'webhook' });
      // Debug logs show the second worker finding the cluster busy.
      const workerFlags = [...stack.flags({ windowMs: WINDOW_MS, endpoint: proxy.endpoint }), '--log-level', 'debug'];
      const workers = await Promise.all(
        ['a', 'b'].map((n) => stack.processes.start('worker', workerFlags, { name: `worker-${n}` })),
      );

      const holding = proxy.holdNext(HOLD_AFTER);
      // Sent just after a window starts, so the window each change falls into is known.
      const firstWindow = await nextWindow(WINDOW_MS);
      const first = await postJson(`${webhook.url}/audit`, auditBatch(3, 'first'));
      assert.equal(first.status, 200);
      await withTimeout(holding, 60_000, () => `the first snapshot to start\n${stack.describe()}`);

      // The snapshot of the first window is streaming now; a change lands in etcd and is reported.
      const secondWindow = await nextWindow(WINDOW_MS);
      const put = await stack.etcd.client.put('/registry/configmaps/e2e/during').value('changed').exec();
      const changedAt = Number(put.header.revision);
      const during = await postJson(`${webhook.url}/audit`, auditBatch(2, 'during'));
      assert.equal(during.status, 200);
      assert.ok(secondWindow.start > firstWindow.start);

      // The follow-up comes due while the first still runs: the free worker must wait for it.
      const busy = (w: CliProcess) =>
        w.logs().some((l) => l.msg === 'another snapshot of this cluster is running; waiting');
      await waitFor('the follow-up to find the cluster busy', () => Promise.resolve(workers.some(busy)), 30_000).catch(
        fail,
      );
      assert.deepEqual(await stack.list(), [], 'nothing published while the first snapshot is held');
      proxy.release();

      await waitFor('two snapshots', async () => (await stack.list()).length >= 2, 60_000, 500).catch(fail);
      await waitFor(
        'the webhook to have sent its triggers',
        async () => (await readMetric(webhook, 'etcd_autobackup_pending_triggers')) === 0,
      ).catch(fail);
      await waitQueueIdle(stack.queue(), 'the queue to drain').catch(fail);
      const snapshots = (await stack.list()).reverse();
      assert.equal(
        snapshots.length,
        2,
        `exactly one snapshot after the running one: ${JSON.stringify(snapshots.map((m) => m.cause))}`,
      );
      const [a, b] = snapshots as [Manifest, Manifest];

      assert.equal(a.cause.window, windowId(firstWindow.start));
      assert.deepEqual(a.cause.counts, { audit: 3 });
      assert.ok(a.etcd.revision < changedAt, 'the running snapshot started before the change');
      assert.equal(b.cause.window, windowId(secondWindow.start));
      assert.deepEqual(b.cause.counts, { audit: 2 });
      assert.ok(b.etcd.revision >= changedAt, 'the follow-up holds the change');
      assert.ok(
        Date.parse(b.createdAt) >= Date.parse(a.createdAt) + a.durationMs,
        'the follow-up started after the first had finished',
      );
      assert.equal((await stack.queue().getJobs(['failed'])).length, 0);
    } finally {
      await stack.stop();
    }
  },
);

test('SIGTERM to an idle serve exits 0', { timeout: 60_000 }, async (t) => {
  const stack = await startE2eStack();
  try {
    const serve = await stack.processes.start('serve', stack.flags({ windowMs: WINDOW_MS }), { name: 'serve' });
    const signalled = Date.now();
    serve.signal('SIGTERM');
    // Far below the 25 s a running snapshot would be given: an idle service has nothing to wait for.
    const exit = await withTimeout(serve.exited, 20_000, () => `serve to exit after SIGTERM\n${stack.describe()}`);
    t.diagnostic(`exited ${Date.now() - signalled} ms after SIGTERM`);
    assert.deepEqual(exit, { code: 0, signal: null }, stack.describe());
    assert.deepEqual(await stack.storeFiles(), []);
  } finally {
    await stack.stop();
  }
});

test(
  'SIGTERM to serve during a snapshot: nothing half-visible, exit 0, the job runs again on the next start',
  { timeout: 120_000 },
  async () => {
    const stack = await startE2eStack({ holdProxy: true });
    const fail = failWith(stack);
    try {
      const proxy = stack.proxy;
      assert.ok(proxy);
      await fillRandom(stack.etcd.client, 300, 10 * 1024);
      const flags = stack.flags({ windowMs: WINDOW_MS, endpoint: proxy.endpoint });
      const serve = await stack.processes.start('serve', flags, { name: 'serve' });

      const holding = proxy.holdNext(HOLD_AFTER);
      const enqueued = await runCliOk(['snapshot', '--enqueue', '--json', ...flags], { timeoutMs: 60_000 });
      const { jobId } = JSON.parse(enqueued.stdout) as { jobId: string };
      await withTimeout(holding, 60_000, () => `the snapshot to start\n${stack.describe()}`);
      await waitFor('the upload to be under way (a temp file in the store)', async () =>
        (await stack.storeFiles()).some((f) => f.includes('.partial-')),
      ).catch(fail);

      serve.signal('SIGTERM');
      // The snapshot cannot finish (the proxy holds it): the worker gives it its grace, then abandons it.
      const exit = await withTimeout(serve.exited, 60_000, () => `serve to exit after SIGTERM\n${stack.describe()}`);
      assert.deepEqual(exit, { code: 0, signal: null }, stack.describe());
      assert.deepEqual(await stack.storeFiles(), [], 'no object, no manifest, no temp file');
      assert.deepEqual(await stack.list(), []);
      const job = await stack.queue().getJob(jobId);
      assert.ok(job, 'the job is still in the queue');
      assert.ok(['delayed', 'waiting'].includes(await job.getState()), `job state ${await job.getState()}`);
      assert.equal(job.attemptsMade, 0, 'a shutdown spends no attempt');

      proxy.release();
      const again = await stack.processes.start('serve', flags, { name: 'serve-again' });
      await waitFor(
        'the abandoned job to run on the next start',
        async () => (await stack.list()).length > 0,
        60_000,
        500,
      ).catch(fail);
      await waitQueueIdle(stack.queue(), 'the queue to drain').catch(fail);
      const [m] = await stack.list();
      assert.ok(m);
      assert.equal(m.cause.source, 'manual');
      assert.equal(await (await stack.queue().getJob(jobId))?.getState(), 'completed');
      assert.deepEqual(await stack.storeFiles(), [m.key, m.key.replace(/\.db(\.gz|\.zst)?$/, '.manifest.json')].sort());
      again.signal('SIGTERM');
      assert.equal((await withTimeout(again.exited, 20_000, () => stack.describe())).code, 0);
    } finally {
      await stack.stop();
    }
  },
);
