/**
 * A worker process SIGKILLed in the middle of an upload: BullMQ finds its job stalled once the
 * job lock (queue.lockDuration, 10 s in the e2e stack) has expired, the other worker runs
 * it again, and exactly one complete snapshot results.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../support/cli.js';
import type { CliProcess } from '../support/processes.js';
import { auditBatch, fillRandom, postJson, startE2eStack, waitQueueIdle, withTimeout } from './stack.js';
import { waitFor } from '../support/ports.js';

const WINDOW_MS = 2_000;
/** Stalled-job recovery waits out the 10 s job lock and a 5 s stalled check: allow both, the snapshot and a slow machine. */
const RECOVERY_TIMEOUT_MS = 90_000;

test(
  'a worker SIGKILLed mid-upload: the other worker retries the stalled job; one complete snapshot, nothing partial visible',
  { timeout: 240_000 },
  async () => {
    const stack = await startE2eStack({ holdProxy: true });
    try {
      const proxy = stack.proxy;
      assert.ok(proxy);
      // About 3 MiB of random data: the snapshot streams well past the point where the proxy holds it.
      await fillRandom(stack.etcd.client, 300, 10 * 1024);

      const webhook = await stack.processes.start('webhook', stack.flags({ windowMs: WINDOW_MS }), { name: 'webhook' });
      const workerFlags = stack.flags({ windowMs: WINDOW_MS, endpoint: proxy.endpoint });
      const workers = await Promise.all([
        stack.processes.start('worker', workerFlags, { name: 'worker-a' }),
        stack.processes.start('worker', workerFlags, { name: 'worker-b' }),
      ]);

      const holding = proxy.holdNext(512 * 1024);
      const sent = await postJson(`${webhook.url}/audit`, auditBatch(7, 'crash'));
      assert.equal(sent.status, 200, `audit answer ${JSON.stringify(sent.body)}\n${stack.describe()}`);
      await withTimeout(holding, 60_000, () => `the snapshot to stream through the proxy\n${stack.describe()}`);

      const started = (w: CliProcess) => w.logs().some((l) => l.msg === 'snapshot starting');
      const running = workers.filter(started);
      assert.equal(running.length, 1, `one worker is snapshotting\n${stack.describe()}`);
      const victim = running[0] as CliProcess;
      const survivor = workers.find((w) => w !== victim) as CliProcess;
      // The held bytes are on their way through the worker's pipeline into the store.
      const partialAtKill = await waitFor('the upload to be under way (a temp file in the store)', async () => {
        const partial = (await stack.storeFiles()).filter((f) => f.includes('.partial-'));
        return partial.length > 0 ? partial : undefined;
      }).catch((err: unknown) => {
        throw new Error(`${err instanceof Error ? err.message : String(err)}\n${stack.describe()}`, { cause: err });
      });
      assert.equal(partialAtKill.length, 1, `one upload: ${partialAtKill.join(', ')}`);

      const exit = await victim.kill();
      assert.equal(exit.signal, 'SIGKILL');
      proxy.release();

      const [manifest] = await waitFor(
        'the stalled job to be retried by the other worker',
        async () => {
          const listed = await stack.list();
          return listed.length > 0 ? listed : undefined;
        },
        RECOVERY_TIMEOUT_MS,
        1_000,
      ).catch((err: unknown) => {
        throw new Error(`${err instanceof Error ? err.message : String(err)}\n${stack.describe()}`);
      });
      assert.ok(manifest);
      const queue = stack.queue();
      await waitQueueIdle(queue, 'the queue to drain');

      const listed = await stack.list();
      assert.equal(
        listed.length,
        1,
        `exactly one snapshot: ${listed.map((m) => m.id).join(', ')}\n${stack.describe()}`,
      );
      assert.deepEqual(
        manifest.cause.counts,
        { audit: 7 },
        'the retry keeps the cause the first attempt took from the ledger',
      );
      assert.ok(
        survivor.logs().some((l) => l.msg === 'snapshot published'),
        `the surviving worker published it\n${stack.describe()}`,
      );
      assert.ok(
        survivor.logs().some((l) => typeof l.msg === 'string' && l.msg.startsWith('snapshot job stalled')),
        `the survivor found the job stalled\n${stack.describe()}`,
      );
      const completed = await queue.getJobs(['completed']);
      const failed = await queue.getJobs(['failed']);
      assert.equal(completed.length, 1);
      assert.equal(failed.length, 0, failed.map((j) => j.failedReason).join('; '));

      // What a reader can see is exactly the object and its manifest. The killed process could not
      // remove its own temp file; it stays invisible (list skips temp files) until swept.
      const files = await stack.storeFiles();
      const manifestFile = manifest.key.replace(/\.db(\.gz|\.zst)?$/, '.manifest.json');
      assert.deepEqual(
        files.filter((f) => !partialAtKill.includes(f)),
        [manifest.key, manifestFile].sort(),
        'no other object, manifest or temp file: the retry left nothing partial behind',
      );

      const verified = await runCli(['verify', 'latest', '--cluster', 'e2e', '--store', `file://${stack.storeDir}`], {
        timeoutMs: 60_000,
      });
      assert.equal(verified.code, 0, `verify latest: ${verified.stderr}`);
      assert.match(verified.stdout, new RegExp(`snapshot ${manifest.id}: OK`));
    } finally {
      await stack.stop();
    }
  },
);
