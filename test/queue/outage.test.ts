import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMetrics } from '../../core/metrics.js';
import { createQueueRecorder, windowOf } from '../../core/queue/index.js';
import { startWorkerPool } from '../../worker/pool.js';
import { waitFor } from '../support/ports.js';
import { startStack, waitIdle, waitManifests } from '../support/queue-stack.js';

const WINDOW = 2_000;

async function gauge(g: { get(): Promise<{ values: { value: number }[] }> }): Promise<number | undefined> {
  return (await g.get()).values[0]?.value;
}

test('Redis killed and restarted during a burst: nothing thrown, pending reported, one snapshot after it is back', async () => {
  const stack = await startStack();
  const config = stack.config({ debounceWindow: WINDOW });
  const metrics = createMetrics({ defaultMetrics: false });
  let offset = 0;
  const recorder = createQueueRecorder({
    config,
    metrics,
    flushIntervalMs: 100,
    settleMs: 500,
    now: () => new Date(Date.now() + offset),
  });
  const pool = await startWorkerPool({ config, store: stack.store, log: stack.log });
  try {
    await recorder.queue.waitUntilReady();
    // A job added before the crash is lost with Redis's memory; the recorder must add it again.
    recorder.record({ source: 'audit', resource: 'ns/before', at: new Date() });
    await recorder.flush();
    assert.equal((await recorder.queue.getJobs(['delayed'])).length, 1);

    await stack.redis.kill();
    await waitFor('the recorder to notice', () => Promise.resolve(!recorder.status().redisUp));
    assert.equal(await gauge(metrics.redisUp), 0);

    // The burst crosses into the next window: while Redis is away both coalesce into one.
    const BURST = 600;
    const windows = new Set<string>();
    for (let i = 0; i < BURST; i++) {
      if (i === BURST / 2) offset = WINDOW;
      windows.add(windowOf(Date.now() + offset, WINDOW).id);
      assert.doesNotThrow(() =>
        recorder.record({ source: i % 2 ? 'audit' : 'etcd-watch', resource: `ns/pod-${i % 9}`, at: new Date() }),
      );
      if (i % 100 === 99) await sleep(30);
    }
    await recorder.flush();
    assert.ok(windows.size >= 2);
    const down = recorder.status();
    assert.equal(down.redisUp, false);
    assert.ok(down.pendingTriggers >= BURST, `pending ${down.pendingTriggers}`);
    assert.equal(down.pendingWindows, 1, 'coalesced into one window');
    assert.equal(await gauge(metrics.pendingTriggers), down.pendingTriggers);

    await stack.redis.restart();
    await waitFor('the pending triggers to be enqueued', () => {
      const s = recorder.status();
      return Promise.resolve(s.redisUp && s.pendingTriggers === 0);
    });
    assert.equal(await gauge(metrics.redisUp), 1);
    assert.equal(await gauge(metrics.pendingTriggers), 0);

    const [m] = await waitManifests(stack, 1);
    await waitIdle(recorder.queue);
    assert.equal((await stack.manifests()).length, 1, 'exactly one snapshot after Redis is back');
    assert.ok(m);
    const counted = Object.values(m.cause.counts ?? {}).reduce((a, b) => a + b, 0);
    assert.ok(counted >= BURST, `the snapshot counts the burst (${counted})`);
    assert.equal(m.cause.window, [...windows].sort().at(-1), 'the newest window covers the older one');
  } finally {
    await pool.close().catch(() => undefined);
    await recorder.close();
    await stack.stop();
  }
});
