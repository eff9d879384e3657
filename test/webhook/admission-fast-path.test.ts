import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { gzipSync } from 'node:zlib';
import { configSchema } from '../../core/config/index.js';
import { createMetrics } from '../../core/metrics.js';
import { createLogger } from '../../core/logger.js';
import { admissionFastPath, type AdmissionFastPathOptions } from '../../webhook/admission-fast-path.js';
import { createBodySlots } from '../../webhook/body-slots.js';
import { fixture, postJson, RecordingRecorder, sample, startWebhook } from './harness.js';

const review = fixture<{ request: Record<string, unknown> }>('admission-review-update.json');
const allowed = fixture('admission-review-update.response.json');

/** The fast path alone on a bare node:http server; what it leaves gets 599. */
async function bare(
  authenticate: AdmissionFastPathOptions['authenticate'] = () => undefined,
): Promise<{ url: string; recorder: RecordingRecorder; server: Server }> {
  const recorder = new RecordingRecorder();
  const metrics = createMetrics({ defaultMetrics: false });
  const log = createLogger({ level: 'silent' });
  const fast = admissionFastPath({
    authenticate,
    slots: createBodySlots({ max: 8, field: 'webhook.admissionConcurrency' }),
    body: { limit: 64 * 1024, limitField: 'webhook.admissionBodyLimit', maxDepth: 32, expected: 'an AdmissionReview' },
    triggers: { filters: configSchema.parse({}).filters, recorder, metrics, log, now: () => new Date(0) },
    metrics,
    log,
  });
  const server = createServer((req, res) => {
    if (fast(req, res)) return;
    res.statusCode = 599;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no TCP address');
  return { url: `http://127.0.0.1:${addr.port}`, recorder, server };
}

test('the fast path takes POST /admission exactly, answers it without Express, and leaves every other request', async () => {
  const { url, recorder, server } = await bare();
  try {
    const res = await postJson(`${url}/admission`, review);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), allowed);
    assert.equal(recorder.changes.length, 1);
    assert.equal((await fetch(`${url}/admission`)).status, 599);
    assert.equal((await postJson(`${url}/admission/`, review)).status, 599);
    assert.equal((await postJson(`${url}/admission?timeout=10s`, review)).status, 599);
    assert.equal((await postJson(`${url}/audit`, review)).status, 599);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test('an error inside the fast path is answered 500 without details, and the server keeps serving', async () => {
  let calls = 0;
  const { url, server } = await bare(() => {
    calls++;
    if (calls === 1) throw new Error('secret detail');
    return undefined;
  });
  try {
    const res = await postJson(`${url}/admission`, review);
    assert.equal(res.status, 500);
    assert.deepEqual(await res.json(), { error: 'internal error; the server log has the details' });
    assert.deepEqual(await (await postJson(`${url}/admission`, review)).json(), allowed);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test('POST /admission (fast path) and POST /admission/ (Express) give the same answers to good and bad reviews', async () => {
  const hook = await startWebhook({ config: { webhook: { admissionBodyLimit: 16 * 1024 } } });
  const bodies: Array<[string, string | Uint8Array, Record<string, string>]> = [
    ['good', JSON.stringify(review), {}],
    ['gzip', gzipSync(JSON.stringify(review)), { 'content-encoding': 'gzip' }],
    ['charset', JSON.stringify(review), { 'content-type': 'Application/JSON ; charset="UTF-8"' }],
    ['latin-1', JSON.stringify(review), { 'content-type': 'application/json; charset=latin1' }],
    ['yaml', JSON.stringify(review), { 'content-type': 'application/yaml' }],
    ['json suffix', JSON.stringify(review), { 'content-type': 'application/merge-patch+json' }],
    ['empty', '', {}],
    ['array', '[]', {}],
    ['string', '"x"', {}],
    ['broken', '{"apiVersion":', {}],
    ['deep', `{"request":${'['.repeat(100)}${']'.repeat(100)}}`, {}],
    ['huge', JSON.stringify({ ...review, pad: 'x'.repeat(32 * 1024) }), {}],
    ['no uid', JSON.stringify({ ...review, request: { ...review.request, uid: '' } }), {}],
    ['brotli junk', 'not brotli', { 'content-encoding': 'br' }],
    ['compress', JSON.stringify(review), { 'content-encoding': 'compress' }],
  ];
  try {
    for (const [name, body, headers] of bodies) {
      const [fast, routed] = await Promise.all(
        ['/admission', '/admission/'].map(async (path) => {
          const res = await postJson(`${hook.url}${path}`, body, headers);
          return {
            status: res.status,
            type: res.headers.get('content-type'),
            body: await res.text(),
          };
        }),
      );
      assert.deepEqual(fast, routed, name);
      assert.match(fast?.type ?? '', /^application\/json; charset=utf-8$/, name);
    }
    const metrics = await (await fetch(`${hook.url}/metrics`)).text();
    // Both spellings are the one route in the metrics: 2 good + 2 gzip + 2 charset.
    assert.equal(sample(metrics, 'etcd_autobackup_http_requests_total{route="/admission",code="200"}'), 6);
    assert.equal(sample(metrics, 'etcd_autobackup_http_requests_total{route="/admission",code="413"}'), 2);
    assert.equal(sample(metrics, 'etcd_autobackup_http_requests_total{route="/admission",code="415"}'), 8);
    assert.match(hook.logs(), /"path":"\/admission","status":413,.*"msg":"request rejected"/);
  } finally {
    await hook.close();
  }
});

test('while reviews fill webhook.admissionConcurrency, the fast path refuses more with 429 and Retry-After', async () => {
  const hook = await startWebhook({ config: { webhook: { admissionConcurrency: 1 } } });
  try {
    const held = request(`${hook.url}/admission`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    const answer = new Promise<number>((resolve, reject) => {
      held.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      held.on('error', reject);
    });
    held.flushHeaders();
    await new Promise<void>((resolve) => held.write('{"apiVersion":"admission.k8s.io/v1",', () => resolve()));
    let refused: Response | undefined;
    for (let i = 0; i < 200 && refused === undefined; i++) {
      const res = await postJson(`${hook.url}/admission`, review);
      if (res.status === 429) refused = res;
      else await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(refused, 'a second concurrent review was refused');
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.match(
      ((await refused.json()) as { error: string }).error,
      /\/admission requests at once.*webhook\.admissionConcurrency/,
    );
    held.end(JSON.stringify(review).replace(/^\{"apiVersion":"admission.k8s.io\/v1",/, ''));
    assert.equal(await answer, 200);
    assert.equal((await postJson(`${hook.url}/admission`, review)).status, 200);
  } finally {
    await hook.close();
  }
});
