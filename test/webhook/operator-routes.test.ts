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

    const queued = await fetch(`${url}/snapshot`, {
      method: 'POST',
      headers: { ...auth('ops', 's3cret'), 'X-Etcd-Autobackup': '1' },
    });
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

test('state-changing operator requests a cross-site form could send are refused; JSON, the header or same-origin pass', async () => {
  const { url, role, close } = await serveRole({ 'dashboard-user': 'ops', 'dashboard-password': 's3cret' });
  try {
    const post = (headers: Record<string, string>, body?: string) =>
      fetch(`${url}/snapshot`, { method: 'POST', headers: { ...auth('ops', 's3cret'), ...headers }, body });
    const jobsBefore = (await role.recorder.queue.getJobs(['waiting'])).length;
    for (const [name, headers, body] of [
      ['no content type', {}, undefined],
      ['form', { 'content-type': 'application/x-www-form-urlencoded' }, 'a=1'],
      ['multipart', { 'content-type': 'multipart/form-data; boundary=x' }, '--x--'],
      ['text', { 'content-type': 'text/plain' }, '{}'],
      ['cross-site', { 'sec-fetch-site': 'cross-site', 'content-type': 'text/plain' }, '{}'],
    ] as const) {
      const res = await post(headers, body);
      assert.equal(res.status, 403, name);
      assert.match(((await res.json()) as { error: string }).error, /X-Etcd-Autobackup/, name);
    }
    const bullBoardPost = await fetch(`${url}/queues/api/metrics/history/purge`, {
      method: 'POST',
      headers: auth('ops', 's3cret'),
    });
    assert.equal(bullBoardPost.status, 403);
    const jobsAfter = (await role.recorder.queue.getJobs(['waiting'])).length;
    assert.equal(jobsAfter, jobsBefore, 'no refused request queued a job');
    const passing: Record<string, string>[] = [
      { 'content-type': 'application/json' },
      { 'X-Requested-With': 'XMLHttpRequest' },
      { 'X-Etcd-Autobackup': '1' },
      { 'sec-fetch-site': 'same-origin' },
    ];
    for (const headers of passing)
      assert.equal((await post(headers, headers['content-type'] ? '{}' : undefined)).status, 202);
  } finally {
    await close();
  }
});

test('failed logins are rate-limited per client with 429 and Retry-After, shared by the operator routes', async () => {
  const { url, close } = await serveRole({ 'dashboard-user': 'ops', 'dashboard-password': 's3cret' });
  try {
    // A first visit without credentials is the browser asking for the prompt; it costs nothing.
    for (let i = 0; i < 20; i++) assert.equal((await fetch(`${url}/queues`)).status, 401);
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const path = i % 2 === 0 ? '/queues' : '/snapshot';
      statuses.push((await fetch(`${url}${path}`, { method: 'GET', headers: auth('ops', `guess-${i}`) })).status);
    }
    assert.deepEqual(statuses, [...Array<number>(10).fill(401), 429, 429]);
    const limited = await fetch(`${url}/queues`, { headers: auth('ops', 's3cret') });
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
  } finally {
    await close();
  }
});

test('the dashboard loads nothing from outside: its page and stylesheets reference only its own assets', async () => {
  const { url, close } = await serveRole({ 'dashboard-user': 'ops', 'dashboard-password': 's3cret' });
  try {
    const headers = auth('ops', 's3cret');
    const page = await fetch(`${url}/queues`, { headers });
    assert.equal(page.status, 200);
    const html = await page.text();
    // bull-board's own template links Google Fonts; the served page must not.
    assert.doesNotMatch(html, /fonts\.(googleapis|gstatic)\.com/);
    const base = new URL(/<base href="([^"]+)"/.exec(html)?.[1] ?? '/queues/', url);
    const refs = [...html.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => m[1] as string);
    assert.ok(
      refs.some((r) => r.endsWith('.css')),
      `the page links no stylesheet: ${refs.join(', ')}`,
    );
    const external = (ref: string) => new URL(ref, base).origin !== new URL(url).origin;
    assert.deepEqual(refs.filter(external), [], 'the page loads from another origin');
    for (const ref of refs.filter((r) => r.endsWith('.css'))) {
      const sheet = await fetch(new URL(ref, base), { headers });
      assert.equal(sheet.status, 200, `${ref} is not served`);
      const css = await sheet.text();
      const loads = [...css.matchAll(/url\(\s*['"]?([^'")]+)|@import\s+['"]([^'"]+)/g)].map(
        (m) => (m[1] ?? m[2]) as string,
      );
      assert.deepEqual(
        loads.filter((l) => !l.startsWith('data:') && external(new URL(l, new URL(ref, base)).href)),
        [],
        `${ref} loads from another origin`,
      );
    }
  } finally {
    await close();
  }
});
