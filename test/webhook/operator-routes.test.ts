/**
 * The operator-only routes of the webhook role (dashboard, POST /snapshot) with a real Redis:
 * off without credentials, 401 with wrong ones, and a queued job with the right ones.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { loadConfig } from '../../core/config/index.js';
import { createLogger } from '../../core/logger.js';
import { createMetrics } from '../../core/metrics.js';
import { createWebhookRole, type WebhookRole } from '../../webhook/role.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const log = createLogger({ level: 'silent' });
let redis: RedisServer;
before(async () => {
  redis = await startRedis();
});
after(async () => redis.stop());

async function serveRole(
  flags: Record<string, string>,
): Promise<{ role: WebhookRole; url: string; close: () => Promise<void> }> {
  const config = loadConfig({ env: {}, flags: { 'redis-url': redis.url, 'max-interval': '0', ...flags } });
  const role = createWebhookRole({ config, log, metrics: createMetrics({ defaultMetrics: false }) });
  const server: Server = await new Promise((resolve) => {
    const s = role.app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    role,
    url,
    close: async () => {
      await new Promise((r) => server.close(r));
      await role.close();
    },
  };
}

const auth = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});

test('without dashboard credentials, /queues and POST /snapshot are off and say how to turn them on', async () => {
  const { url, close } = await serveRole({});
  try {
    const queues = await fetch(`${url}/queues`);
    assert.equal(queues.status, 404);
    assert.match(((await queues.json()) as { error: string }).error, /dashboard\.user and dashboard\.password/);
    const snap = await fetch(`${url}/snapshot`, { method: 'POST' });
    assert.equal(snap.status, 404);
    assert.match(((await snap.json()) as { error: string }).error, /snapshot --enqueue/);
  } finally {
    await close();
  }
});

test('with credentials: 401 without or with wrong ones, the dashboard and a queued manual job with the right ones', async () => {
  const { url, role, close } = await serveRole({ 'dashboard-user': 'ops', 'dashboard-password': 's3cret' });
  try {
    const anonymous = await fetch(`${url}/queues`);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic realm=/);
    assert.equal((await fetch(`${url}/queues`, { headers: auth('ops', 'wrong') })).status, 401);
    assert.equal((await fetch(`${url}/snapshot`, { method: 'POST', headers: auth('ops', 'nope') })).status, 401);

    const page = await fetch(`${url}/queues`, { headers: auth('ops', 's3cret') });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);

    const queued = await fetch(`${url}/snapshot`, { method: 'POST', headers: auth('ops', 's3cret') });
    assert.equal(queued.status, 202);
    const { jobId } = (await queued.json()) as { jobId: string };
    const job = await role.recorder.queue.getJob(jobId);
    assert.ok(job, 'the job exists in the queue');
    assert.deepEqual(job.data.causes, { manual: 1 });
    assert.equal((await fetch(`${url}/snapshot`, { headers: auth('ops', 's3cret') })).status, 405);
  } finally {
    await close();
  }
});
