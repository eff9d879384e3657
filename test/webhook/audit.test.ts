import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { fixture, postJson, sample, startWebhook } from './harness.js';

const batch = fixture<{ items: Array<Record<string, unknown>> }>('audit-eventlist-mixed.json');

test('POST /audit records exactly the expected triggers of the mixed batch', async () => {
  const hook = await startWebhook();
  try {
    const res = await postJson(`${hook.url}/audit`, batch);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { events: 9, triggers: 3 });
    assert.deepEqual(
      hook.recorder.changes.map((c) => ({ ...c, at: c.at.toISOString() })),
      [
        { source: 'audit', resource: 'pods default/nginx', at: '2026-11-20T08:15:02.131Z' },
        { source: 'audit', resource: 'apps/deployments shop/web', at: '2026-11-20T08:15:03.019Z' },
        {
          source: 'audit',
          resource: 'apiextensions.k8s.io/customresourcedefinitions certificates.cert-manager.io',
          at: '2026-11-20T08:15:08.051Z',
        },
      ],
    );

    const text = await (await fetch(`${hook.url}/metrics`)).text();
    assert.equal(sample(text, 'etcd_autobackup_triggers_total{source="audit",result="counted"}'), 3);
    assert.equal(sample(text, 'etcd_autobackup_triggers_total{source="audit",result="ignored"}'), 6);
    const ignored = (reason: string) =>
      sample(text, `etcd_autobackup_triggers_ignored_total{source="audit",reason="${reason}"}`);
    assert.deepEqual(['stage', 'verb', 'resource', 'status', 'dry-run'].map(ignored), [1, 1, 2, 1, 1]);
    assert.equal(sample(text, 'etcd_autobackup_http_requests_total{route="/audit",code="200"}'), 1);
  } finally {
    await hook.close();
  }
});

test('POST /audit accepts audit.k8s.io/v1beta1 batches, empty batches and events without timestamps', async () => {
  const now = new Date('2030-01-01T00:00:00Z');
  const hook = await startWebhook({ now: () => now });
  try {
    const write = batch.items[0];
    assert.ok(write);
    const { stageTimestamp: _s, requestReceivedTimestamp: _r, ...untimed } = write;
    const res = await postJson(`${hook.url}/audit`, {
      kind: 'EventList',
      apiVersion: 'audit.k8s.io/v1beta1',
      items: [untimed],
    });
    assert.equal(res.status, 200);
    assert.deepEqual(hook.recorder.changes, [{ source: 'audit', resource: 'pods default/nginx', at: now }]);

    for (const items of [[], null]) {
      const empty = await postJson(`${hook.url}/audit`, { kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items });
      assert.equal(empty.status, 200);
      assert.deepEqual(await empty.json(), { events: 0, triggers: 0 });
    }
  } finally {
    await hook.close();
  }
});

test('a malformed event is skipped and counted; the rest of its batch still records', async () => {
  const hook = await startWebhook();
  try {
    const res = await postJson(`${hook.url}/audit`, { ...batch, items: [{ stage: 42 }, 'nonsense', ...batch.items] });
    assert.equal(res.status, 200);
    assert.equal(hook.recorder.changes.length, 3);
    const text = await (await fetch(`${hook.url}/metrics`)).text();
    assert.equal(sample(text, 'etcd_autobackup_triggers_ignored_total{source="audit",reason="malformed"}'), 2);
  } finally {
    await hook.close();
  }
});

test('a recorder that throws costs its own event, not the batch', async () => {
  let calls = 0;
  const hook = await startWebhook({
    recorder: {
      record() {
        calls++;
        throw new Error('queue exploded');
      },
    },
  });
  try {
    const res = await postJson(`${hook.url}/audit`, batch);
    assert.equal(res.status, 200);
    assert.equal(calls, 3);
    assert.match(hook.logs(), /queue exploded/);
  } finally {
    await hook.close();
  }
});

interface BadCase {
  name: string;
  send: () => Promise<Response>;
  status: number;
  error: RegExp;
}

test('bad audit requests get a 4xx JSON error that says what is wrong, and the server keeps serving', async () => {
  const hook = await startWebhook({ config: { webhook: { auditBodyLimit: 64 * 1024 } } });
  const url = `${hook.url}/audit`;
  const cases: BadCase[] = [
    {
      name: 'malformed JSON',
      send: () => postJson(url, '{"kind": "EventList", "items": [}'),
      status: 400,
      error: /not a valid JSON object; expected an audit.k8s.io\/v1 EventList/,
    },
    {
      name: 'JSON with trailing garbage',
      send: () => postJson(url, '{"kind": "EventList"} x'),
      status: 400,
      error: /not a valid JSON object \(error at position 22\)/,
    },
    {
      name: 'JSON that is not an object',
      send: () => postJson(url, '"EventList"'),
      status: 400,
      error: /not a valid JSON object/,
    },
    {
      name: 'a JSON array',
      send: () => postJson(url, batch.items),
      status: 400,
      error:
        /expected apiVersion audit.k8s.io\/v1 or audit.k8s.io\/v1beta1 and kind EventList, got a JSON value that is not an object/,
    },
    {
      name: 'wrong apiVersion',
      send: () => postJson(url, { ...batch, apiVersion: 'audit.k8s.io/v2' }),
      status: 400,
      error: /got apiVersion "audit.k8s.io\/v2" kind "EventList"/,
    },
    {
      name: 'wrong kind',
      send: () => postJson(url, { ...batch, kind: 'Event' }),
      status: 400,
      error: /kind EventList, got apiVersion "audit.k8s.io\/v1" kind "Event"/,
    },
    {
      name: 'items not a list',
      send: () => postJson(url, { ...batch, items: {} }),
      status: 400,
      error: /EventList.items must be an array/,
    },
    {
      name: 'no body',
      send: () => fetch(url, { method: 'POST' }),
      status: 400,
      error: /no body; expected an audit.k8s.io\/v1 EventList/,
    },
    {
      name: 'wrong content type',
      send: () => postJson(url, JSON.stringify(batch), { 'content-type': 'text/plain' }),
      status: 415,
      error: /expected Content-Type application\/json, got "text\/plain"/,
    },
    {
      name: 'unsupported charset',
      send: () => postJson(url, JSON.stringify(batch), { 'content-type': 'application/json; charset=latin-9' }),
      status: 415,
      error: /unsupported charset "latin-9"/,
    },
    {
      name: 'unsupported encoding',
      send: () => postJson(url, JSON.stringify(batch), { 'content-encoding': 'compress' }),
      status: 415,
      error: /unsupported Content-Encoding "compress"/,
    },
    {
      name: 'body over the limit',
      send: () => postJson(url, { ...batch, padding: 'x'.repeat(100 * 1024) }),
      status: 413,
      error: /larger than 65536 bytes; raise webhook.auditBodyLimit/,
    },
    {
      // The limit holds for the inflated size, so a small compressed body cannot expand past it.
      name: 'gzip body over the limit once inflated',
      send: () =>
        postJson(url, gzipSync(JSON.stringify({ ...batch, padding: ' '.repeat(200 * 1024) })), {
          'content-encoding': 'gzip',
        }),
      status: 413,
      error: /larger than 65536 bytes/,
    },
    {
      name: 'wrong method',
      send: () => fetch(url),
      status: 405,
      error: /method GET is not allowed on \/audit; use POST/,
    },
  ];
  try {
    for (const c of cases) {
      const res = await c.send();
      assert.equal(res.status, c.status, c.name);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/, c.name);
      const body = (await res.json()) as { error?: unknown };
      assert.equal(typeof body.error, 'string', c.name);
      assert.match(String(body.error), c.error, c.name);

      const good = await postJson(url, batch);
      assert.equal(good.status, 200, `a good batch after: ${c.name}`);
    }
    assert.equal(hook.recorder.changes.length, 3 * cases.length);
    const gz = await postJson(url, gzipSync(JSON.stringify(batch)), { 'content-encoding': 'gzip' });
    assert.equal(gz.status, 200);
  } finally {
    await hook.close();
  }
});

test('parse errors echo nothing of the body, to the client or to the log', async () => {
  const hook = await startWebhook();
  try {
    const res = await postJson(`${hook.url}/audit`, '{"requestObject": {"data": {"password": "hunter2-s3cr3t"}} oops');
    assert.equal(res.status, 400);
    assert.doesNotMatch(await res.text(), /s3cr3t/);
    assert.match(hook.logs(), /request rejected/);
    assert.doesNotMatch(hook.logs(), /s3cr3t/);
  } finally {
    await hook.close();
  }
});
