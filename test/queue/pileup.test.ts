import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createQueueRecorder, windowOf } from '../../core/queue/index.js';
import { startWorkerPool } from '../../worker/pool.js';
import { waitFor } from '../support/ports.js';
import { GatedStore, waitIdle, waitManifests, withStack } from '../support/queue-stack.js';

const WINDOW = 500;

test('snapshots slower than the window: windows waiting behind the running one fold into one snapshot, causes summed', async () => {
  await withStack(async (stack, cleanup) => {
    const config = stack.config({ debounceWindow: WINDOW });
    const store = new GatedStore(stack.store);
    const held = store.hold();
    const pool = await startWorkerPool({ config, store, log: stack.log, lockRetryMs: 100 });
    cleanup(() => pool.close());
    const recorder = createQueueRecorder({ config, flushIntervalMs: 50, settleMs: 150 });
    cleanup(() => recorder.close());
    await recorder.queue.waitUntilReady();

    const windows = new Set<string>();
    let sent = 0;
    let last = 0;
    // Traffic over several windows; the first window's snapshot is held (a slow store) meanwhile.
    while (windows.size < 6) {
      last = Date.now();
      windows.add(windowOf(last, WINDOW).id);
      recorder.record({ source: sent % 2 ? 'audit' : 'admission', resource: `ns/pod-${sent % 7}`, at: new Date() });
      sent += 1;
      await sleep(40);
    }
    await held.started;
    await recorder.flush();
    // Every window of the traffic has ended and its job is due behind the running snapshot.
    const end = windowOf(last, WINDOW).end + 300;
    await waitFor('the last window to end', () => Promise.resolve(Date.now() > end));
    await waitFor('window jobs parked behind the lock', async () => {
      const delayed = await recorder.queue.getJobs(['delayed', 'waiting']);
      return delayed.length >= 2;
    });
    held.release();

    await waitManifests(stack, 2, 60_000);
    await waitIdle(recorder.queue, 60_000);
    const manifests = await stack.manifests();
    assert.equal(manifests.length, 2, 'the running snapshot plus one for every window that waited behind it');
    const counted = manifests
      .flatMap((m) => Object.values(m.cause.counts ?? {}))
      .reduce((a: number, b: number) => a + b, 0);
    assert.equal(counted, sent, 'every trigger counted in exactly one manifest');
    const folded = (await recorder.queue.getJobs(['completed'])).filter((j) => j.returnvalue?.foldedInto);
    assert.ok(folded.length >= 1, 'the waiting window jobs finished as folded');
  });
});
