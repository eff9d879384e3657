/**
 * The change-triggered service as deployed: three webhook replicas (audit webhook and etcd watch)
 * and two workers, all separate processes sharing one Redis. A burst of 10,000 audit events and a
 * stream of etcd writes within one debounce window make exactly one snapshot; the next window's
 * changes make exactly one more.
 */
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { windowOf } from '../../core/queue/index.js';
import type { Manifest } from '../../worker/manifest.js';
import { waitFor } from '../support/ports.js';
import { readMetric, type CliProcess } from '../support/processes.js';
import { auditBatch, nextWindow, startE2eStack, waitQueueIdle, type E2eStack } from './stack.js';

/**
 * Long enough for the whole burst to land in one window on most runs; when a loaded machine makes
 * it spill into the next, the test still checks one snapshot per window and every trigger counted.
 */
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

/** The ids of the debounce windows from the one holding `fromMs` to the one holding `toMs`. */
function windowsBetween(fromMs: number, toMs: number): Set<string> {
  const ids = new Set<string>();
  for (let w = windowOf(fromMs, WINDOW_MS); w.start <= toMs; w = windowOf(w.end, WINDOW_MS)) ids.add(w.id);
  return ids;
}

/** Waits until every webhook's etcd watch has counted `n` writes. */
async function watchesSee(webhooks: readonly CliProcess[], n: number): Promise<void> {
  await waitFor(`every watch to see ${n} writes`, async () => {
    const seen = await Promise.all(
      webhooks.map((w) => readMetric(w, 'etcd_autobackup_triggers_total', { source: 'etcd-watch', result: 'counted' })),
    );
    return seen.every((c) => c === n);
  });
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
  '3 webhooks + 2 workers: 10,000 audit events and etcd writes make one snapshot per window they land in (one when they fit), every trigger counted once',
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
      await nextWindow(WINDOW_MS);
      // Every trigger is recorded at its arrival, between these two instants: the windows the
      // burst can have landed in follow from them, however long the machine took to send it.
      const burstStart = Date.now();
      const answers = await Promise.all(
        batches.map((body, i) => postRaw(`${(webhooks[i % webhooks.length] as CliProcess).url}/audit`, body)),
      );
      for (let i = 0; i < ETCD_WRITES; i++)
        await stack.etcd.client.put(`/registry/configmaps/e2e/burst-${i}`).value(`v${i}`);
      await watchesSee(webhooks, ETCD_WRITES);
      const burstEnd = Date.now();
      const burstWindows = windowsBetween(burstStart, burstEnd);
      t.diagnostic(
        `burst and etcd writes took ${burstEnd - burstStart} ms, ${burstWindows.size} window(s) of ${WINDOW_MS} ms; ${answers.reduce((n, a) => n + a.throttled, 0)} batch(es) were sent again after a 429`,
      );
      for (const a of answers) {
        assert.equal(a.status, 200, a.text);
        assert.deepEqual(JSON.parse(a.text), { events: BATCH, triggers: BATCH });
      }

      // The next window's changes, sent while the burst's snapshot is still to come.
      await nextWindow(WINDOW_MS);
      const nextStart = Date.now();
      const late = await postRaw(`${(webhooks[1] as CliProcess).url}/audit`, JSON.stringify(auditBatch(BATCH, 'next')));
      assert.equal(late.status, 200, late.text);
      await stack.etcd.client.put('/registry/configmaps/e2e/next').value('v');
      await watchesSee(webhooks, ETCD_WRITES + 1);
      const nextWindows = windowsBetween(nextStart, Date.now());

      const snapshots = await settle(stack, webhooks, 2);
      const causes = JSON.stringify(snapshots.map((m) => m.cause));
      const windows = snapshots.map((m) => m.cause.window ?? '');
      assert.equal(new Set(windows).size, snapshots.length, `never two snapshots of one window: ${causes}`);
      assert.ok(
        windows.every((w) => burstWindows.has(w) || nextWindows.has(w)),
        `every snapshot is of a window the changes landed in: ${causes}`,
      );
      const ofBurst = snapshots.filter((m) => burstWindows.has(m.cause.window ?? ''));
      const ofNext = snapshots.filter((m) => nextWindows.has(m.cause.window ?? ''));
      // One snapshot for the burst when it fitted in one window (the usual case), never more than one per window.
      assert.ok(
        ofBurst.length >= 1 && ofBurst.length <= burstWindows.size,
        `burst snapshots ${ofBurst.length}: ${causes}`,
      );
      assert.ok(ofNext.length >= 1 && ofNext.length <= nextWindows.size, `next snapshots ${ofNext.length}: ${causes}`);
      const audit = (ms: Manifest[]) => ms.reduce((n, m) => n + (m.cause.counts?.audit ?? 0), 0);
      const watch = (ms: Manifest[]) => ms.reduce((n, m) => n + (m.cause.counts?.['etcd-watch'] ?? 0), 0);
      assert.equal(audit(snapshots), EVENTS + BATCH, `every audit trigger counted, once: ${causes}`);

      const completed = await stack.queue().getJobs(['completed']);
      const folded = completed.filter((j) => j.returnvalue?.foldedInto !== undefined);
      assert.equal(completed.length - folded.length, snapshots.length, 'one job per snapshot');
      if (folded.length === 0) {
        // Nothing slower than a window (the usual case): each snapshot holds its own windows' triggers.
        assert.equal(audit(ofBurst), EVENTS, `every audit trigger of the burst is counted, once: ${causes}`);
        assert.equal(audit(ofNext), BATCH);
        // Each replica's watch records every response (a few records each): at least one per replica.
        assert.ok(watch(ofBurst) >= webhooks.length, `etcd-watch counts of the burst ${watch(ofBurst)}`);
        assert.ok(watch(ofNext) >= webhooks.length, `etcd-watch counts of the next window ${watch(ofNext)}`);
      }
      for (const m of snapshots) {
        assert.deepEqual(Object.keys(m.cause.counts ?? {}).sort(), ['audit', 'etcd-watch']);
        assert.ok(m.cause.samples && m.cause.samples.length > 0, 'samples present');
        for (const s of m.cause.samples) {
          assert.match(
            s,
            /^(pods default\/nginx|apps\/deployments shop\/web|apiextensions\.k8s\.io\/customresourcedefinitions certificates\.cert-manager\.io)-(b\d+|next)-\d+$|^configmaps e2e\/(burst-\d+|next)$/,
            s,
          );
        }
      }
      assert.equal((await stack.queue().getJobs(['failed'])).length, 0);
      assert.ok(
        workers.every((w) => !w.logs().some((l) => (l.level ?? 0) >= 50)),
        `no worker logged an error\n${stack.describe()}`,
      );
    } finally {
      await stack.stop();
    }
  },
);
