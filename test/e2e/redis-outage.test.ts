/**
 * Redis crashes (SIGKILL, nothing persisted) and comes back on the same port while the apiserver
 * keeps sending audit batches and admission reviews to a webhook process. The webhook answers
 * every request, allows every review, reports itself not ready and its pending triggers while
 * Redis is away, and once Redis is back the triggers it held lead to a snapshot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Manifest } from '../../worker/manifest.js';
import { waitFor } from '../support/ports.js';
import { readMetric, type CliProcess } from '../support/processes.js';
import { admissionReview, auditBatch, postJson, startE2eStack, waitQueueIdle } from './stack.js';

const WINDOW_MS = 2_000;
const AUDIT_PER_BATCH = 10;

type Phase = 'before' | 'outage' | 'after';

interface Burst {
  /** Triggers sent and answered entirely within the outage, by source. */
  outage: { audit: number; admission: number };
  /** Triggers sent once the restart had begun. */
  after: { audit: number; admission: number };
  requests: number;
  /** Every answer that was not a 2xx, or a review not allowed. */
  problems: string[];
  stop(): Promise<void>;
}

/** Sends audit batches and admission reviews back to back until stopped. */
function startBurst(webhook: CliProcess, phase: () => Phase): Burst {
  const burst: Burst = {
    outage: { audit: 0, admission: 0 },
    after: { audit: 0, admission: 0 },
    requests: 0,
    problems: [],
    stop: () => Promise.resolve(),
  };
  let stopping = false;
  const run = (async () => {
    for (let i = 0; !stopping; i++) {
      const at = phase();
      const uid = `e2e-outage-${i}`;
      const [audit, admission] = await Promise.all([
        postJson(`${webhook.url}/audit`, auditBatch(AUDIT_PER_BATCH, `o${i}`)),
        postJson(`${webhook.url}/admission`, admissionReview(uid, `web-${i}`)),
      ]);
      burst.requests += 2;
      if (audit.status < 200 || audit.status > 299)
        burst.problems.push(`audit ${i} (${at}): ${audit.status} ${JSON.stringify(audit.body)}`);
      const review = admission.body as { response?: { uid?: string; allowed?: boolean } };
      if (
        admission.status < 200 ||
        admission.status > 299 ||
        review.response?.allowed !== true ||
        review.response.uid !== uid
      ) {
        burst.problems.push(`admission ${i} (${at}): ${admission.status} ${JSON.stringify(admission.body)}`);
      }
      const counted = at === 'after' ? burst.after : at === 'outage' && phase() === 'outage' ? burst.outage : undefined;
      if (counted) {
        counted.audit += AUDIT_PER_BATCH;
        counted.admission += 1;
      }
      await sleep(20);
    }
  })();
  burst.stop = async () => {
    stopping = true;
    await run;
  };
  return burst;
}

async function readyStatus(proc: CliProcess): Promise<number> {
  return (await fetch(`${proc.url}/readyz`)).status;
}

test(
  'Redis SIGKILLed and restarted during a burst: every answer 2xx, not ready meanwhile, pending reported, no trigger lost',
  { timeout: 120_000 },
  async (t) => {
    const stack = await startE2eStack();
    let burst: Burst | undefined;
    const fail = (err: unknown): never => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${stack.describe()}`);
    };
    try {
      const flags = stack.flags({ windowMs: WINDOW_MS });
      const [webhook] = await Promise.all([
        stack.processes.start('webhook', flags, { name: 'webhook' }),
        stack.processes.start('worker', flags, { name: 'worker' }),
      ]);
      assert.equal(await readyStatus(webhook), 200, 'ready before the outage');

      let phase: Phase = 'before';
      burst = startBurst(webhook, () => phase);
      await waitFor('the burst to be under way', () => Promise.resolve((burst?.requests ?? 0) >= 20));

      await stack.redis.kill();
      phase = 'outage';
      await waitFor('/readyz to report not ready', async () => (await readyStatus(webhook)) === 503).catch(fail);
      const pending = await waitFor('pending triggers on /metrics', async () => {
        const n = await readMetric(webhook, 'etcd_autobackup_pending_triggers');
        return n !== undefined && n > 0 ? n : undefined;
      }).catch(fail);
      assert.equal(await readMetric(webhook, 'etcd_autobackup_redis_up'), 0);
      // Long enough for triggers to pile up over more than one debounce window.
      await waitFor(
        'triggers over more than a window',
        () => Promise.resolve((burst?.outage.admission ?? 0) >= 20),
        30_000,
        50,
      );
      await sleep(WINDOW_MS);
      const outage = { ...burst.outage };
      assert.ok(outage.audit > 0 && outage.admission > 0);

      phase = 'after';
      const restartedAt = Date.now();
      await stack.redis.restart();
      await waitFor('/readyz to report ready again', async () => (await readyStatus(webhook)) === 200, 30_000).catch(
        fail,
      );
      await burst.stop();
      assert.deepEqual(burst.problems, [], `every answer 2xx and every review allowed\n${stack.describe()}`);

      await waitFor(
        'the held triggers to reach Redis',
        async () => (await readMetric(webhook, 'etcd_autobackup_pending_triggers')) === 0,
        30_000,
      ).catch(fail);
      const after = (snapshots: Manifest[]) => snapshots.filter((m) => Date.parse(m.createdAt) >= restartedAt);
      await waitFor(
        'a snapshot after Redis is back',
        async () => after(await stack.list()).length > 0,
        60_000,
        500,
      ).catch(fail);
      await waitQueueIdle(stack.queue(), 'the queue to drain').catch(fail);
      const snapshots = after(await stack.list());

      // Held triggers and those sent after the restart all end up in the snapshots taken since.
      const total = (source: 'audit' | 'admission') =>
        snapshots.reduce((n, m) => n + (m.cause.counts?.[source] ?? 0), 0);
      const causes = JSON.stringify(snapshots.map((m) => m.cause));
      t.diagnostic(
        `outage ${JSON.stringify(outage)}, after ${JSON.stringify(burst.after)}, snapshots since the restart: ${causes}`,
      );
      for (const source of ['audit', 'admission'] as const) {
        const expected = outage[source] + burst.after[source];
        assert.ok(total(source) >= expected, `${expected} ${source} triggers (outage + after) are counted: ${causes}`);
      }
      assert.ok(pending > 0);
      assert.equal(await readMetric(webhook, 'etcd_autobackup_redis_up'), 1);
      assert.equal((await stack.queue().getJobs(['failed'])).length, 0, 'no job failed');
    } finally {
      await burst?.stop();
      await stack.stop();
    }
  },
);
