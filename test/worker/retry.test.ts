import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics } from '../../core/metrics.js';
import { createQueueRecorder, retryDelay } from '../../core/queue/index.js';
import { startWorkerPool } from '../../worker/pool.js';
import { waitFor } from '../support/ports.js';
import { GatedStore, waitIdle, waitManifests, withStack } from '../support/queue-stack.js';

async function value(m: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await m.get()).values[0]?.value ?? 0;
}

test('retryDelay doubles from the first delay and stops at the cap', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 50].map((n) => retryDelay(n, 100, 500)),
    [100, 200, 400, 500, 500, 500, 500],
  );
  assert.equal(retryDelay(3, 1000, 10), 1000, 'a cap below the first delay is the first delay');
});

test('a store failing past the old 5-attempt budget: the job keeps retrying, is reported uncovered, then publishes', async () => {
  await withStack(async (stack, cleanup) => {
    const config = stack.config({ attempts: 0, backoff: 50, backoffMax: 200 });
    const store = new GatedStore(stack.store);
    store.failNext = 8;
    const metrics = createMetrics({ defaultMetrics: false });
    const pool = await startWorkerPool({ config, store, log: stack.log, metrics, metricsIntervalMs: 50 });
    cleanup(() => pool.close());
    const recorder = createQueueRecorder({ config });
    cleanup(() => recorder.close());

    await recorder.enqueueNow({ resource: 'cli' });
    await waitFor(
      'the failing job to be reported uncovered',
      async () => (await value(metrics.uncoveredChanges)) === 1,
    );
    const [m] = await waitManifests(stack, 1, 120_000);
    assert.ok(m);
    assert.equal(store.failNext, 0);
    assert.equal(await value(metrics.snapshotRetries), 8);
    await waitIdle(recorder.queue);
    await waitFor('uncovered changes back to 0', async () => (await value(metrics.uncoveredChanges)) === 0);
    assert.equal(await value(metrics.oldestUncoveredChange), 0);
    assert.equal((await recorder.queue.getJobs(['failed'])).length, 0);
  });
});
