import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createQueueRecorder, windowOf, type QueueRecorder } from '../../core/queue/index.js';
import { startWorkerPool, type WorkerPool } from '../../worker/pool.js';
import { GatedStore, waitIdle, waitManifests, withStack } from '../support/queue-stack.js';

const WINDOW = 2_000;
const FAST = { flushIntervalMs: 100, settleMs: 1_000 };

async function untilNextWindow(): Promise<void> {
  const now = Date.now();
  await sleep(windowOf(now, WINDOW).end - now + 20);
}

test('1,200 changes from three recorders make one snapshot per window, with every change counted', async () => {
  await withStack(async (stack, cleanup) => {
    const config = stack.config({ debounceWindow: WINDOW });
    const pool: WorkerPool = await startWorkerPool({ config, store: stack.store, log: stack.log });
    cleanup(() => pool.close());
    const recorders: QueueRecorder[] = [0, 1, 2].map(() => createQueueRecorder({ config, ...FAST }));
    for (const r of recorders) cleanup(() => r.close());
    await Promise.all(recorders.map((r) => r.queue.waitUntilReady()));

    // The recorders use the real clock; the test notes which windows its records fell into, so a
    // stall of the machine that spills a burst into the next window cannot make it fail.
    async function burst(count: number, tag: string): Promise<Set<string>> {
      const windows = new Set<string>();
      for (let i = 0; i < count; i++) {
        windows.add(windowOf(Date.now(), WINDOW).id);
        const r = recorders[i % recorders.length] as QueueRecorder;
        r.record({ source: i % 3 === 0 ? 'admission' : 'audit', resource: `${tag}/pod-${i % 7}`, at: new Date() });
        if (i % 100 === 99) await sleep(40);
      }
      await Promise.all(recorders.map((r) => r.flush()));
      return windows;
    }

    await untilNextWindow();
    const first = await burst(1_200, 'a');
    const afterFirst = await waitManifests(stack, first.size);
    await waitIdle(recorders[0]!.queue);
    assert.equal((await stack.manifests()).length, first.size, 'one snapshot per window, not per change');
    const counted = afterFirst.reduce((n, m) => n + Object.values(m.cause.counts ?? {}).reduce((a, b) => a + b, 0), 0);
    assert.equal(counted, 1_200, 'the causes of the job merge every recorder’s counts');
    assert.deepEqual(new Set(afterFirst.map((m) => m.cause.window)), first);
    assert.ok(afterFirst.every((m) => (m.cause.samples ?? []).length > 0));

    await untilNextWindow();
    const second = await burst(300, 'b');
    assert.ok(![...second].some((w) => first.has(w)));
    await waitManifests(stack, first.size + second.size);
    await waitIdle(recorders[0]!.queue);
    assert.equal((await stack.manifests()).length, first.size + second.size);
    const completed = await recorders[0]!.queue.getJobs(['completed']);
    assert.equal(completed.length, first.size + second.size, 'one job per window');
  });
});

test('a change arriving while its window’s snapshot runs gets a snapshot that starts after it', async () => {
  await withStack(async (stack, cleanup) => {
    const config = stack.config({ debounceWindow: WINDOW });
    const store = new GatedStore(stack.store);
    const pool = await startWorkerPool({ config, store, log: stack.log });
    cleanup(() => pool.close());

    // Recorder A added the window's job; replica B's clock is behind, so both still name the
    // window after its snapshot has started.
    let clockA: number | undefined = undefined;
    const a = createQueueRecorder({ config, ...FAST, now: () => new Date(clockA ?? Date.now()) });
    cleanup(() => a.close());
    await a.queue.waitUntilReady();
    const held = store.hold();
    const window = windowOf(Date.now(), WINDOW);
    a.record({ source: 'audit', resource: 'ns/first', at: new Date() });
    await a.flush();

    await held.started;
    const put = await stack.etcd.client.put('/registry/late/one').value('x').exec();
    const lateRevision = Number(put.header.revision);
    clockA = window.start + 1;
    const b = createQueueRecorder({ config, ...FAST, now: () => new Date(window.start + 2) });
    cleanup(() => b.close());
    await b.queue.waitUntilReady();
    a.record({ source: 'audit', resource: 'ns/late-a', at: new Date() });
    b.record({ source: 'admission', resource: 'ns/late-b', at: new Date() });
    await Promise.all([a.flush(), b.flush()]);
    held.release();

    const [m1, m2] = await waitManifests(stack, 2);
    await waitIdle(a.queue);
    assert.equal((await stack.manifests()).length, 2, 'exactly one follow-up snapshot');
    assert.ok(m1 && m2);
    assert.ok(m1.etcd.revision < lateRevision, 'the first snapshot started before the late change');
    assert.ok(m2.etcd.revision >= lateRevision, 'the follow-up includes the late change');
    assert.ok(
      Date.parse(m2.createdAt) >= Date.parse(m1.createdAt) + m1.durationMs,
      'the follow-up started after the first ended',
    );
    assert.equal(m1.cause.window, window.id);
    assert.equal(m2.cause.window, window.id);
    assert.deepEqual(m1.cause.samples, ['ns/first']);
    assert.deepEqual([...(m2.cause.samples ?? [])].sort(), ['ns/late-a', 'ns/late-b']);
    assert.deepEqual(m2.cause.counts, { audit: 1, admission: 1 });
    const ids = (await a.queue.getJobs(['completed'])).map((j) => j.id).sort();
    assert.deepEqual(ids, [`test@${window.id}`, `test@${window.id}+1`]);
  });
});
