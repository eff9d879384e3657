/**
 * Admission during a Redis outage, with the real recorder: every review is answered, allowed,
 * and the change is kept in memory for later. "Without waiting for Redis" is shown without a
 * clock: the Redis the recorder talks to is first SIGKILLed (ioredis would queue a command until
 * it reconnects) and then a listener that accepts connections and never answers, where any
 * awaited Redis call hangs for good. An admission answer that waited for Redis would never come.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { configSchema } from '../../core/config/index.js';
import { createQueueRecorder } from '../../core/queue/index.js';
import { waitFor } from '../support/ports.js';
import { startRedis } from '../support/redis.js';
import { fixture, postJson, startWebhook } from './harness.js';

interface Review {
  request: { uid: string; name: string; [field: string]: unknown };
  [field: string]: unknown;
}
interface ReviewAnswer {
  response?: { uid: string; allowed: boolean };
}

const PARALLEL = 50;

async function reviewAll(url: string, tag: string): Promise<void> {
  const template = fixture<Review>('admission-review-update.json');
  const answers = await Promise.all(
    Array.from({ length: PARALLEL }, async (_, i) => {
      const uid = `${tag}-${i}`;
      const res = await postJson(`${url}/admission`, {
        ...template,
        request: { ...template.request, uid, name: `web-${tag}-${i}` },
      });
      return { uid, status: res.status, body: (await res.json()) as ReviewAnswer };
    }),
  );
  for (const a of answers) {
    assert.equal(a.status, 200, `${a.uid}: ${JSON.stringify(a.body)}`);
    assert.deepEqual(a.body.response, { ...a.body.response, uid: a.uid, allowed: true });
  }
}

test('admission is answered and allowed while Redis is down or hangs; the changes wait in memory', async () => {
  const redis = await startRedis();
  const sockets = new Set<Socket>();
  const silent = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  const config = configSchema.parse({ cluster: 'outage', redis: { url: redis.url } });
  const recorder = createQueueRecorder({ config, flushIntervalMs: 100 });
  const webhook = await startWebhook({ recorder });
  try {
    await recorder.queue.waitUntilReady();
    await reviewAll(webhook.url, 'up');
    await recorder.flush();
    assert.equal(recorder.status().pendingTriggers, 0, 'with Redis up the changes reach it');

    await redis.kill();
    await waitFor('the recorder to see Redis gone', () => Promise.resolve(!recorder.status().redisUp || undefined));
    await reviewAll(webhook.url, 'down');
    assert.equal(recorder.status().pendingTriggers, PARALLEL, 'every change is kept for when Redis is back');

    // A Redis that accepts and never answers on the same port: awaited calls would hang forever.
    await new Promise<void>((resolve) => silent.listen(redis.port, '127.0.0.1', resolve));
    assert.equal((silent.address() as AddressInfo).port, redis.port);
    await reviewAll(webhook.url, 'hung');
    assert.equal(recorder.status().pendingTriggers, 2 * PARALLEL);
    assert.equal(recorder.status().redisUp, false);
  } finally {
    await webhook.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
    // close() flushes first, which cannot reach Redis: it keeps the triggers and returns.
    await recorder.close();
    await redis.stop();
  }
});
