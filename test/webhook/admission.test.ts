import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, postJson, sample, startWebhook } from './harness.js';

interface Review {
  apiVersion: string;
  kind: string;
  request: Record<string, unknown>;
}

const review = fixture<Review>('admission-review-update.json');
const allowed = fixture('admission-review-update.response.json');

function withRequest(patch: Record<string, unknown>): Review {
  return { ...review, request: { ...review.request, ...patch } };
}

test('POST /admission answers allowed with the request uid, in exactly the AdmissionReview v1 shape, and records the change', async () => {
  const now = new Date('2026-11-20T08:15:03.000Z');
  const hook = await startWebhook({ now: () => now });
  try {
    const res = await postJson(`${hook.url}/admission`, review);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await res.json(), allowed);
    assert.deepEqual(hook.recorder.changes, [{ source: 'admission', resource: 'apps/deployments shop/web', at: now }]);
  } finally {
    await hook.close();
  }
});

test('dry runs, CONNECT and filtered requests are allowed but not recorded, and counted by reason', async () => {
  const hook = await startWebhook({
    config: { filters: { ignoreUsers: ['system:serviceaccount:kube-system:noisy'] } },
  });
  try {
    const cases: Array<[Review, string]> = [
      [withRequest({ uid: 'dry', dryRun: true }), 'dry-run'],
      [
        withRequest({
          uid: 'connect',
          operation: 'CONNECT',
          resource: { group: '', version: 'v1', resource: 'pods' },
          subResource: 'exec',
        }),
        'verb',
      ],
      [
        withRequest({ uid: 'lease', resource: { group: 'coordination.k8s.io', version: 'v1', resource: 'leases' } }),
        'resource',
      ],
      [withRequest({ uid: 'noisy', userInfo: { username: 'system:serviceaccount:kube-system:noisy' } }), 'user'],
      // Well-formed enough to answer, not enough to know what changed.
      [withRequest({ uid: 'odd', resource: 'deployments' }), 'malformed'],
    ];
    for (const [body, reason] of cases) {
      const res = await postJson(`${hook.url}/admission`, body);
      assert.equal(res.status, 200, reason);
      assert.deepEqual(
        await res.json(),
        {
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: { uid: body.request.uid, allowed: true },
        },
        reason,
      );
    }
    assert.deepEqual(hook.recorder.changes, []);

    const text = await (await fetch(`${hook.url}/metrics`)).text();
    for (const [, reason] of cases) {
      assert.equal(
        sample(text, `etcd_autobackup_triggers_ignored_total{source="admission",reason="${reason}"}`),
        1,
        reason,
      );
    }
    assert.equal(sample(text, 'etcd_autobackup_triggers_total{source="admission",result="ignored"}'), cases.length);
    assert.equal(sample(text, 'etcd_autobackup_triggers_total{source="admission",result="counted"}'), 0);
  } finally {
    await hook.close();
  }
});

test('a well-formed review is allowed even when recording throws', async () => {
  const hook = await startWebhook({
    recorder: {
      record() {
        throw new Error('queue exploded');
      },
    },
  });
  try {
    const res = await postJson(`${hook.url}/admission`, review);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), allowed);
    assert.match(hook.logs(), /queue exploded/);
  } finally {
    await hook.close();
  }
});

test('bad admission requests get a 4xx JSON error, and the server keeps serving', async () => {
  const hook = await startWebhook({ config: { webhook: { admissionBodyLimit: 16 * 1024 } } });
  const url = `${hook.url}/admission`;
  const cases: Array<{ name: string; send: () => Promise<Response>; status: number; error: RegExp }> = [
    {
      name: 'malformed JSON',
      send: () => postJson(url, '{"apiVersion": "admission.k8s.io/v1", "request": {"uid": "x"'),
      status: 400,
      error: /not a valid JSON object \(error at position 60\); expected an admission.k8s.io\/v1 AdmissionReview/,
    },
    {
      name: 'v1beta1 review',
      send: () => postJson(url, { ...review, apiVersion: 'admission.k8s.io/v1beta1' }),
      status: 400,
      error:
        /expected apiVersion admission.k8s.io\/v1 and kind AdmissionReview, got apiVersion "admission.k8s.io\/v1beta1".*admissionReviewVersions/,
    },
    {
      name: 'wrong kind',
      send: () => postJson(url, { ...review, kind: 'EventList' }),
      status: 400,
      error: /got apiVersion "admission.k8s.io\/v1" kind "EventList"/,
    },
    {
      name: 'no request',
      send: () => postJson(url, { apiVersion: review.apiVersion, kind: review.kind }),
      status: 400,
      error: /request.uid must be a non-empty string/,
    },
    {
      name: 'no uid',
      send: () => postJson(url, withRequest({ uid: undefined })),
      status: 400,
      error: /request.uid must be a non-empty string/,
    },
    {
      name: 'wrong content type',
      send: () => postJson(url, JSON.stringify(review), { 'content-type': 'application/yaml' }),
      status: 415,
      error: /expected Content-Type application\/json, got "application\/yaml"/,
    },
    {
      name: 'body over the limit',
      send: () => postJson(url, withRequest({ object: { data: 'x'.repeat(32 * 1024) } })),
      status: 413,
      error: /larger than 16384 bytes; raise webhook.admissionBodyLimit/,
    },
  ];
  try {
    for (const c of cases) {
      const res = await c.send();
      assert.equal(res.status, c.status, c.name);
      const body = (await res.json()) as { error?: unknown };
      assert.match(String(body.error), c.error, c.name);
      const good = await postJson(url, review);
      assert.deepEqual(await good.json(), allowed, `a good review after: ${c.name}`);
    }
    assert.equal(hook.recorder.changes.length, cases.length);
  } finally {
    await hook.close();
  }
});
