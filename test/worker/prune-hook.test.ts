import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../core/logger.js';
import { createMetrics } from '../../core/metrics.js';
import { createQueueRecorder } from '../../core/queue/index.js';
import type { Config } from '../../core/config/index.js';
import { startWorkerPool } from '../../worker/pool.js';
import { pruneAfterSnapshot } from '../../worker/prune.js';
import { startWorkerRole } from '../../worker/role.js';
import type { Store } from '../../worker/stores/store.js';
import { waitFor } from '../support/ports.js';
import { waitIdle, waitManifests, type Stack, withStack } from '../support/queue-stack.js';

function keepOne(stack: Stack): Config {
  const config = stack.config();
  return { ...config, retention: { ...config.retention, keepLast: 1, hourly: 0, daily: 0, weekly: 0, monthly: 0 } };
}

const counter = async (metrics: ReturnType<typeof createMetrics>, result: string) =>
  (await metrics.pruneRuns.get()).values.find((v) => v.labels.result === result)?.value ?? 0;

test('the worker prunes after each successful snapshot', async () => {
  await withStack(async (stack, cleanup) => {
    const config = keepOne(stack);
    const metrics = createMetrics({ defaultMetrics: false });
    const role = await startWorkerRole({ config, log: stack.log, metrics });
    cleanup(() => role.close());
    const recorder = createQueueRecorder({ config });
    cleanup(() => recorder.close());

    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(await recorder.enqueueNow({ resource: `cli-${i}` }));
      await waitIdle(recorder.queue);
    }
    const results = await Promise.all(ids.map(async (id) => (await recorder.queue.getJob(id))?.returnvalue));
    const left = await stack.manifests();
    assert.deepEqual(
      left.map((m) => m.id),
      [results[2]?.id],
      'only the newest snapshot is left',
    );
    assert.equal(await counter(metrics, 'success'), 3);
    const pruned = (await metrics.pruned.get()).values.find((v) => v.labels.kind === 'snapshot')?.value;
    assert.equal(pruned, 2);
  });
});

test('a failing prune is logged and counted but never fails the snapshot job', async () => {
  await withStack(async (stack, cleanup) => {
    const config = keepOne(stack);
    const metrics = createMetrics({ defaultMetrics: false });
    const lines: string[] = [];
    const log = createLogger({
      level: 'error',
      format: 'json',
      destination: { write: (l: string) => lines.push(l) } as unknown as NodeJS.WritableStream,
    });
    // The snapshot path never lists; only retention does, and here its listing fails.
    const store: Store = Object.assign(Object.create(stack.store) as Store, {
      list: () => Promise.reject(new Error('listing refused by the test')),
    });
    const pool = await startWorkerPool({
      config,
      store,
      log,
      metrics,
      afterSnapshot: pruneAfterSnapshot({ config, store, metrics }),
    });
    cleanup(() => pool.close());
    const recorder = createQueueRecorder({ config });
    cleanup(() => recorder.close());

    const first = await recorder.enqueueNow();
    await waitManifests(stack, 1);
    await waitIdle(recorder.queue);
    const second = await recorder.enqueueNow();
    await waitFor(
      'the second job to finish',
      async () => (await (await recorder.queue.getJob(second))?.getState()) === 'completed',
    );

    for (const id of [first, second]) {
      const job = await recorder.queue.getJob(id);
      assert.equal(await job?.getState(), 'completed');
      assert.equal(job?.attemptsMade, 1, 'no retry: the snapshot succeeded');
    }
    assert.equal((await stack.manifests()).length, 2, 'nothing deleted by the failed prune');
    assert.equal(await counter(metrics, 'failure'), 2);
    assert.equal(await counter(metrics, 'success'), 0);
    const errors = lines.map((l) => JSON.parse(l) as { msg: string });
    assert.equal(errors.length, 2);
    assert.match(
      errors[0]?.msg ?? '',
      /^retention after snapshot \S+ failed \(the snapshot itself succeeded\): listing test\/snapshots\/ in file:\/\/\S+ failed, so nothing was deleted: listing refused by the test$/,
    );
  });
});
