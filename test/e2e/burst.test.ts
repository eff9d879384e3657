/**
 * The change-triggered service as deployed: three webhook replicas (audit webhook and etcd watch)
 * and two workers, all separate processes sharing one Redis. A burst of 10,000 audit events and a
 * stream of etcd writes within one debounce window make exactly one snapshot; the next window's
 * changes make exactly one more.
 */
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { windowId } from '../../core/queue/index.js';
import type { Manifest } from '../../worker/manifest.js';
import { waitFor } from '../support/ports.js';
import { readMetric, type CliProcess } from '../support/processes.js';
import { auditBatch, nextWindow, startE2eStack, waitQueueIdle, type E2eStack } from './stack.js';

/** Long enough for the whole burst to land in one window on a loaded 2-core machine. */
const WINDOW_MS = 6_000;
const EVENTS = 10_000;
/** The kube-apiserver's default --audit-webhook-batch-max-size. */
const BATCH = 400;
const ETCD_WRITES = 20;

/**
 * Posts an audit batch as the apiserver's webhook backend does: a 429 (webhook.auditConcurrency
 * is full) is sent again after its Retry-After, so every batch is delivered; the count of 429s is kept.
 */
async function postRaw(url: string, body: string): Promise<{ status: number; text: string; throttled: number }> {
  for (let throttled = 0; ; throttled++) {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const text = await res.text();
    if (res.status !== 429 || throttled >= 20) return { status: res.status, text, throttled };
    await sleep(Number(res.headers.get('retry-after') ?? '1') * 1000);
  }
}

/** Waits until `n` snapshots are listed, no job is left and no webhook holds a trigger: the outcome is final. */
async function settle(stack: E2eStack, webhooks: readonly CliProcess[], n: number): Promise<Manifest[]> {
  const fail = (err: unknown): never => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${stack.describe()}`);
  };
  await waitFor(`${n} snapshot(s)`, async () => (await stack.list()).length >= n, 60_000, 500).catch(fail);
  await waitFor(
    'every webhook to have sent its triggers',
    async () => {
      const pending = await Promise.all(webhooks.map((w) => readMetric(w, 'etcd_autobackup_pending_triggers')));
      return pending.every((p) => p === 0);
    },
    30_000,
  ).catch(fail);
  await waitQueueIdle(stack.queue(), 'the queue to drain').catch(fail);
  return (await stack.list()).reverse();
}

test(
  '3 webhooks + 2 workers: 10,000 audit events and etcd writes in one window make one snapshot, the next window one more',
  { timeout: 180_000 },
  async (t) => {
    const stack = await startE2eStack();
    try {
      const flags = stack.flags({ windowMs: WINDOW_MS });
      const [webhooks, workers] = await Promise.all([
        Promise.all(
          [1, 2, 3].map((i) => stack.processes.start('webhook', [...flags, '--watch'], { name: `webhook-${i}` })),
        ),
        Promise.all([1, 2].map((i) => stack.processes.start('worker', flags, { name: `worker-${i}` }))),
      ]);
      // The watch reads the current revision before it logs this: every later write reaches it.
      await Promise.all(
        webhooks.map((w) => w.waitForLog((l) => l.msg === 'etcd watch: watching', 'the etcd watch to start')),
      );

      // Serialized beforehand so that the window holds the sending, not the building.
      const batches = Array.from({ length: EVENTS / BATCH }, (_, i) => JSON.stringify(auditBatch(BATCH, `b${i}`)));
      const first = await nextWindow(WINDOW_MS);
      const answers = await Promise.all(
        batches.map((body, i) => postRaw(`${(webhooks[i % webhooks.length] as CliProcess).url}/audit`, body)),
      );
      for (let i = 0; i < ETCD_WRITES; i++)
        await stack.etcd.client.put(`/registry/configmaps/e2e/burst-${i}`).value(`v${i}`);
      await waitFor('every watch to see every write', async () => {
        const seen = await Promise.all(
          webhooks.map((w) =>
            readMetric(w, 'etcd_autobackup_triggers_total', { source: 'etcd-watch', result: 'counted' }),
          ),
        );
        return seen.every((n) => n === ETCD_WRITES);
      });
      const burstDone = Date.now();
      t.diagnostic(
        `burst and etcd writes took ${burstDone - first.start} ms of the ${WINDOW_MS} ms window; ${answers.reduce((n, a) => n + a.throttled, 0)} batch(es) were sent again after a 429`,
      );
      assert.ok(
        burstDone < first.end,
        `the burst must fit in one ${WINDOW_MS} ms window to test one snapshot per window; it ended ${burstDone - first.end} ms late`,
      );
      for (const a of answers) {
        assert.equal(a.status, 200, a.text);
        assert.deepEqual(JSON.parse(a.text), { events: BATCH, triggers: BATCH });
      }

      // The next window's changes, sent while the first window's snapshot is still to come.
      const second = await nextWindow(WINDOW_MS);
      assert.equal(second.start, first.end, 'the window right after the burst');
      const late = await postRaw(`${(webhooks[1] as CliProcess).url}/audit`, JSON.stringify(auditBatch(BATCH, 'next')));
      assert.equal(late.status, 200, late.text);
      await stack.etcd.client.put('/registry/configmaps/e2e/next').value('v');

      const snapshots = await settle(stack, webhooks, 2);
      assert.equal(
        snapshots.length,
        2,
        `one snapshot per window: ${JSON.stringify(snapshots.map((m) => m.cause))}\n${stack.describe()}`,
      );
      const [a, b] = snapshots as [Manifest, Manifest];

      assert.equal(a.cause.window, windowId(first.start));
      assert.equal(a.cause.counts?.audit, EVENTS, 'every audit trigger of the burst is counted, once');
      // Each replica's watch records every response (a few records each): at least one per replica.
      assert.ok(
        (a.cause.counts?.['etcd-watch'] ?? 0) >= webhooks.length,
        `etcd-watch count ${a.cause.counts?.['etcd-watch']}`,
      );
      assert.deepEqual(Object.keys(a.cause.counts ?? {}).sort(), ['audit', 'etcd-watch']);
      assert.ok(a.cause.samples && a.cause.samples.length > 0, 'samples present');
      for (const s of a.cause.samples) {
        assert.match(
          s,
          /^(pods default\/nginx|apps\/deployments shop\/web|apiextensions\.k8s\.io\/customresourcedefinitions certificates\.cert-manager\.io)-b\d+-\d+$|^configmaps e2e\/burst-\d+$/,
          s,
        );
      }

      assert.equal(b.cause.window, windowId(second.start));
      assert.equal(b.cause.counts?.audit, BATCH);
      assert.ok((b.cause.counts?.['etcd-watch'] ?? 0) >= webhooks.length);

      const completed = await stack.queue().getJobs(['completed']);
      assert.equal(completed.length, 2, 'two jobs ran in all');
      assert.ok(
        workers.every((w) => !w.logs().some((l) => (l.level ?? 0) >= 50)),
        `no worker logged an error\n${stack.describe()}`,
      );
    } finally {
      await stack.stop();
    }
  },
);
