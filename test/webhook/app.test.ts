import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router } from 'express';
import { sample, startWebhook } from './harness.js';

test('GET /healthz answers 200 while the process is up, whatever readiness says', async () => {
  const hook = await startWebhook({ ready: () => false });
  try {
    const res = await fetch(`${hook.url}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
  } finally {
    await hook.close();
  }
});

test('GET /readyz follows ready(): 200 when true, 503 with a JSON reason when false, throwing or hanging', async () => {
  let state: 'up' | 'down' | 'async-up' | 'throws' | 'hangs' = 'up';
  const hook = await startWebhook({
    readyTimeoutMs: 200,
    ready: () => {
      switch (state) {
        case 'up':
          return true;
        case 'down':
          return false;
        case 'async-up':
          return Promise.resolve(true);
        case 'throws':
          throw new Error('redis: connect ECONNREFUSED');
        case 'hangs':
          return new Promise<boolean>(() => {});
      }
    },
  });
  const probe = async () => {
    const res = await fetch(`${hook.url}/readyz`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  try {
    assert.deepEqual(await probe(), { status: 200, body: { status: 'ready' } });
    state = 'down';
    assert.deepEqual(await probe(), {
      status: 503,
      body: { status: 'not ready', reason: 'a dependency is not reachable (the queue needs Redis)' },
    });
    state = 'async-up';
    assert.deepEqual((await probe()).status, 200);
    state = 'throws';
    const thrown = await probe();
    assert.equal(thrown.status, 503);
    assert.match(String(thrown.body.reason), /readiness check failed/);
    assert.match(hook.logs(), /ECONNREFUSED/);
    state = 'hangs';
    assert.deepEqual(await probe(), {
      status: 503,
      body: { status: 'not ready', reason: 'the readiness check did not answer within 200 ms' },
    });
    state = 'up';
    assert.equal((await probe()).status, 200);
  } finally {
    await hook.close();
  }
});

test('GET /metrics serves the registry in Prometheus text format, default process metrics included', async () => {
  const hook = await startWebhook();
  try {
    await fetch(`${hook.url}/healthz`);
    const res = await fetch(`${hook.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0.0.4/);
    const text = await res.text();
    assert.match(text, /^# HELP etcd_autobackup_triggers_total /m);
    assert.match(text, /^process_cpu_user_seconds_total /m);
    assert.equal(sample(text, 'etcd_autobackup_http_requests_total{route="/healthz",code="200"}'), 1);
  } finally {
    await hook.close();
  }
});

test('unknown routes and methods get JSON errors; extra routers mount beside the webhook routes', async () => {
  const queues = Router();
  queues.get('/api/queues', (_req, res) => {
    res.json({ queues: [] });
  });
  const hook = await startWebhook({ extraRoutes: [{ path: '/queues', handler: queues }] });
  try {
    const mounted = await fetch(`${hook.url}/queues/api/queues`);
    assert.equal(mounted.status, 200);
    assert.deepEqual(await mounted.json(), { queues: [] });

    const missing = await fetch(`${hook.url}/nope?x=1`);
    assert.equal(missing.status, 404);
    assert.match(
      ((await missing.json()) as { error: string }).error,
      /^no route GET \/nope; routes: POST \/audit, POST \/admission, .*\/queues\/\*/,
    );

    const wrong = await fetch(`${hook.url}/healthz`, { method: 'DELETE' });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get('allow'), 'GET');
    assert.match(
      ((await wrong.json()) as { error: string }).error,
      /method DELETE is not allowed on \/healthz; use GET/,
    );

    const text = await (await fetch(`${hook.url}/metrics`)).text();
    assert.equal(sample(text, 'etcd_autobackup_http_requests_total{route="/queues",code="200"}'), 1);
    // Unknown paths share one label, so scanners cannot grow the series count.
    assert.equal(sample(text, 'etcd_autobackup_http_requests_total{route="other",code="404"}'), 1);
    assert.equal(sample(text, 'etcd_autobackup_http_requests_total{route="/healthz",code="405"}'), 1);
  } finally {
    await hook.close();
  }
});
