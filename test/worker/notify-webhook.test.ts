import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { drillSchema, notifySchema } from '../../core/config/schema.js';
import { createMetrics } from '../../core/metrics.js';
import { createQueueRecorder } from '../../core/queue/index.js';
import { drillAfterSnapshot } from '../../worker/drill-hook.js';
import { WebhookNotifier, type Notification } from '../../worker/notify/webhook.js';
import { startWorkerPool } from '../../worker/pool.js';
import { fillEtcd } from '../support/etcd.js';
import { freePort, waitFor } from '../support/ports.js';
import { GatedStore, waitIdle, waitManifests, withStack } from '../support/queue-stack.js';
import { tempDir } from '../support/tmp.js';

const SECRET = 'T000/B000/sEcReTtOkEn';

interface Received {
  path: string;
  contentType: string | undefined;
  body: unknown;
}

/** A local receiver; `answers` are the statuses of the first requests (then 200). */
async function receiver(answers: number[] = []) {
  const got: Received[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({
        path: req.url ?? '',
        contentType: req.headers['content-type'],
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown,
      });
      res.writeHead(answers.shift() ?? 200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/${SECRET}`;
  return { got, url, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function capturedLog() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { log: pino({ level: 'debug' }, stream), text: () => text };
}

test('webhook JSON bodies for a failed attempt, a published snapshot and a passed drill; a 503 is retried; the URL never logged', async () => {
  const rx = await receiver([503]);
  await withStack(async (stack, cleanup) => {
    cleanup(rx.close);
    await fillEtcd(stack.etcd.client, 20, 16, '/registry/pods/ns/');
    const scratch = await tempDir('notify-drill');
    cleanup(scratch.remove);
    const config = {
      ...stack.config({ attempts: 2, backoff: 100 }),
      drill: drillSchema.parse({ afterSnapshot: 1, scratchDir: scratch.path, freeSpaceMargin: 0 }),
    };
    const { log, text } = capturedLog();
    const metrics = createMetrics({ defaultMetrics: false });
    const notifier = new WebhookNotifier({
      settings: notifySchema.parse({ webhook: { url: rx.url, onSuccess: true, backoff: '50ms' } }).webhook,
      log,
      onFailure: (reason) => metrics.notificationFailures.inc({ channel: 'webhook', reason }),
    });
    const store = new GatedStore(stack.store);
    store.failNext = 1;
    const pool = await startWorkerPool({
      config,
      store,
      log,
      notifier,
      afterSnapshot: drillAfterSnapshot({ config, store: stack.store, notifier }),
    });
    cleanup(() => pool.close());
    const recorder = createQueueRecorder({ config });
    cleanup(() => recorder.close());
    await recorder.enqueueNow();
    const [manifest] = await waitManifests(stack, 1);
    await waitIdle(recorder.queue);
    await waitFor('the drill notification', () =>
      Promise.resolve(rx.got.some((r) => (r.body as Notification).event === 'drill.passed')),
    );
    await notifier.settle();
    assert.ok(manifest);

    assert.ok(rx.got.every((r) => r.path === `/services/${SECRET}` && r.contentType === 'application/json'));
    const events = rx.got.map((r) => (r.body as Notification).event);
    // The first POST got a 503 and was sent again.
    assert.deepEqual(events, ['snapshot.failed', 'snapshot.failed', 'snapshot.published', 'drill.passed']);
    const [failed, , published, drill] = rx.got.map((r) => r.body as Notification);
    assert.equal(failed?.format, 'etcd-autobackup-notification/v1');
    assert.deepEqual(
      { ...failed?.failure, jobId: undefined, message: undefined },
      { jobId: undefined, attempt: 1, stage: 'upload', message: undefined, retrying: true },
    );
    assert.match(failed?.failure?.message ?? '', /injected store failure/);
    assert.equal(failed?.ok, false);
    assert.deepEqual(published?.snapshot, {
      id: manifest.id,
      revision: manifest.etcd.revision,
      dbSize: manifest.dbSize,
      storedSize: manifest.storedSize,
      key: manifest.key,
      createdAt: manifest.createdAt,
    });
    assert.match(published?.text ?? '', new RegExp(`snapshot ${manifest.id} of cluster test: revision`));
    assert.deepEqual([drill?.drill?.id, drill?.drill?.ok, drill?.ok], [manifest.id, true, true]);
    assert.ok(drill?.drill?.checks.some((c) => c.name === 'hashkv' && c.ok));
    assert.deepEqual((await metrics.notificationFailures.get()).values, []);
    assert.match(text(), /"status":503/);
    assert.ok(!text().includes('sEcReTtOkEn'), 'the URL is never logged');
  });
});

test('Slack format sends failures only by default; an unreachable receiver is retried, given up and counted, URL not logged', async () => {
  const rx = await receiver();
  try {
    const { log, text } = capturedLog();
    const metrics = createMetrics({ defaultMetrics: false });
    const slack = new WebhookNotifier({
      settings: notifySchema.parse({ webhook: { url: rx.url, format: 'slack' } }).webhook,
      log,
    });
    const failure = { cluster: 'prod', jobId: 'prod@w1', stage: 'connect', message: 'no etcd member answered' };
    slack.drillFinished({
      format: 'etcd-autobackup-drill/v1',
      id: 'snap-1',
      cluster: 'prod',
      at: new Date().toISOString(),
      durationMs: 5,
      ok: true,
      checks: [],
    });
    slack.snapshotFailed({ ...failure, attempt: 1, retrying: true });
    slack.snapshotFailed({ ...failure, attempt: 2, retrying: true }); // a retry: not sent again
    slack.snapshotFailed({ ...failure, attempt: 3, retrying: false }); // given up: sent
    await slack.settle();
    assert.deepEqual(
      rx.got.map((r) => r.body),
      [
        {
          text: ':rotating_light: *etcd-autobackup prod* snapshot.failed: snapshot job prod@w1 of cluster prod, attempt 1, failed at stage connect (retrying): no etcd member answered',
        },
        {
          text: ':rotating_light: *etcd-autobackup prod* snapshot.failed: snapshot job prod@w1 of cluster prod, attempt 3, failed at stage connect (not retried): no etcd member answered',
        },
      ],
    );

    const closed = await freePort();
    const down = new WebhookNotifier({
      settings: notifySchema.parse({
        webhook: { url: `http://127.0.0.1:${closed}/hooks/${SECRET}`, attempts: 3, backoff: '20ms' },
      }).webhook,
      log,
      onFailure: (reason) => metrics.notificationFailures.inc({ channel: 'webhook', reason }),
    });
    down.snapshotFailed({ ...failure, attempt: 1, retrying: true });
    await down.settle();
    assert.deepEqual(
      (await metrics.notificationFailures.get()).values.map((v) => [v.labels.channel, v.labels.reason, v.value]),
      [['webhook', 'network', 1]],
    );
    assert.equal((text().match(/could not be reached/g) ?? []).length, 3, 'three tries');
    assert.match(text(), /"code":"ECONNREFUSED"/);
    assert.ok(!text().includes('sEcReTtOkEn'), 'the URL is never logged');
  } finally {
    await rx.close();
  }
});
