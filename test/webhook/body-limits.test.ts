import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { JsonShapeScanner, jsonShapeProblem } from '../../webhook/json-scan.js';
import { fixture, postJson, startWebhook } from './harness.js';

const batch = fixture<{ apiVersion: string; kind: string; items: unknown[] }>('audit-eventlist-mixed.json');
const review = fixture<Record<string, unknown>>('admission-review-update.json');
const bytes = (s: string) => Buffer.from(s, 'utf8');

test('the shape scan measures depth and top-level list items, ignoring brackets and commas in strings', () => {
  const limits = { maxDepth: 4, maxItems: 3 };
  assert.equal(jsonShapeProblem(bytes('{"items":[{},{},{}]}'), limits), undefined);
  assert.deepEqual(jsonShapeProblem(bytes('{"items":[{},{},{},{}]}'), limits), { kind: 'items', limit: 3 });
  assert.equal(jsonShapeProblem(bytes('{"items":[{"a":"[[[[,,,,"},{"b":"\\"[[[["}]}'), limits), undefined);
  assert.equal(jsonShapeProblem(bytes('{"a":{"b":{"c":[]}}}'), limits), undefined);
  assert.deepEqual(jsonShapeProblem(bytes('{"a":{"b":{"c":[[]]}}}'), limits), { kind: 'depth', limit: 4 });
  // Commas of the top-level object and of nested lists are not items.
  assert.equal(jsonShapeProblem(bytes('{"a":1,"b":2,"c":3,"d":4,"items":[[1,2,3,4,5]]}'), limits), undefined);
});

test('the shape scan gives the same answer wherever the body is split into chunks (escapes across chunk edges)', () => {
  const limits = { maxDepth: 4, maxItems: 3 };
  // Each string ends in a run of backslashes before its closing quote or holds escaped quotes; a scan that
  // lost an escape or a string's end at a chunk edge would count the brackets and commas inside.
  const cases: [string, ReturnType<typeof jsonShapeProblem>][] = [
    [String.raw`{"items":["a\\",",[[[[","b\\\\",",,,,","\"[[[[,,,,"]}`, { kind: 'items', limit: 3 }],
    [String.raw`{"items":["\\\"[[[[,,,,\\",{"x":"\\\\\\"}]}`, undefined],
    [String.raw`{"a":{"b":{"c":["\\","[\"","]\\\\"]}}}`, undefined],
    [String.raw`{"a":{"b":{"c":["\\\\",[]]}}}`, { kind: 'depth', limit: 4 }],
  ];
  for (const [text, expected] of cases) {
    const body = bytes(text);
    assert.doesNotThrow(() => JSON.parse(text), text);
    assert.deepEqual(jsonShapeProblem(body, limits), expected, text);
    for (let cut = 0; cut <= body.length; cut++) {
      const scanner = new JsonShapeScanner(limits);
      const got = scanner.push(body.subarray(0, cut)) ?? scanner.push(body.subarray(cut));
      assert.deepEqual(got, expected, `${text} split at ${cut}`);
    }
    const bytewise = new JsonShapeScanner(limits);
    let got: ReturnType<typeof jsonShapeProblem>;
    for (let i = 0; i < body.length && got === undefined; i++) got = bytewise.push(body.subarray(i, i + 1));
    assert.deepEqual(got, expected, `${text} one byte at a time`);
  }
});

test('an audit batch of 1.5 million items is refused with 413 before it is parsed, and nothing is recorded', async () => {
  const hook = await startWebhook();
  try {
    const body = `{"apiVersion":"audit.k8s.io/v1","kind":"EventList","items":[${'{},'.repeat(1_500_000)}{}]}`;
    const res = await postJson(`${hook.url}/audit`, body);
    assert.equal(res.status, 413);
    assert.match(((await res.json()) as { error: string }).error, /more than 1000 items; .*webhook\.auditMaxEvents/);
    assert.equal(hook.recorder.changes.length, 0);
    assert.equal((await postJson(`${hook.url}/audit`, batch)).status, 200);
  } finally {
    await hook.close();
  }
});

test('an admission review nested 1.5 million deep gets 400 naming webhook.maxJsonDepth', async () => {
  const hook = await startWebhook();
  try {
    const body = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":${'['.repeat(1_500_000)}${']'.repeat(1_500_000)}}`;
    const res = await postJson(`${hook.url}/admission`, body);
    assert.equal(res.status, 400);
    assert.match(
      ((await res.json()) as { error: string }).error,
      /deeper than 512 levels; raise webhook\.maxJsonDepth/,
    );
    const deepAudit = `{"apiVersion":"audit.k8s.io/v1","kind":"EventList","items":[${'{"a":'.repeat(600)}1${'}'.repeat(600)}]}`;
    assert.equal(
      (await postJson(`${hook.url}/audit`, gzipSync(deepAudit), { 'content-encoding': 'gzip' })).status,
      400,
    );
    assert.equal((await postJson(`${hook.url}/admission`, review)).status, 200);
  } finally {
    await hook.close();
  }
});

/** Starts a POST whose body never completes; resolves once the server has the headers and a first chunk. */
function holdOpen(url: string): Promise<{ finish: (rest: string) => Promise<number> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json' } });
    req.on('error', reject);
    req.flushHeaders();
    req.write('{"apiVersion":"audit.k8s.io/v1","kind":"EventList","items":[', () =>
      resolve({
        finish: (rest) =>
          new Promise((done) => {
            req.on('response', (res) => {
              res.resume();
              done(res.statusCode ?? 0);
            });
            req.end(rest);
          }),
      }),
    );
  });
}

test('while audit batches fill webhook.auditConcurrency, more get 429 with Retry-After and admission is still answered', async () => {
  const hook = await startWebhook({ config: { webhook: { auditConcurrency: 2 } } });
  try {
    const held = [await holdOpen(`${hook.url}/audit`), await holdOpen(`${hook.url}/audit`)];
    // The held requests take their slots when their headers are handled; wait until both are in.
    let refused: Response | undefined;
    for (let i = 0; i < 200 && refused === undefined; i++) {
      const res = await postJson(`${hook.url}/audit`, batch);
      if (res.status === 429) refused = res;
      else await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(refused, 'a third concurrent audit batch was refused');
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.match(((await refused.json()) as { error: string }).error, /webhook\.auditConcurrency/);

    const admitted = await postJson(`${hook.url}/admission`, review);
    assert.equal(admitted.status, 200);

    for (const h of held) assert.equal(await h.finish(']}'), 200);
    assert.equal((await postJson(`${hook.url}/audit`, batch)).status, 200);
  } finally {
    await hook.close();
  }
});

test('undecodable Content-Encoding gets 400 or 415 and a debug log line, never a 500 or an error log', async () => {
  const hook = await startWebhook();
  const json = JSON.stringify(batch);
  const cases: Array<[string, Uint8Array | string, string, number]> = [
    ['junk gzip', Buffer.from('this is not gzip at all'), 'gzip', 400],
    ['truncated gzip', gzipSync(json).subarray(0, 40), 'gzip', 400],
    ['truncated deflate', deflateSync(json).subarray(0, 30), 'deflate', 400],
    ['junk br', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x01]), 'br', 400],
    ['unknown encoding', json, 'compress', 415],
    ['stacked encodings', json, 'gzip, br', 415],
  ];
  try {
    for (const [name, body, encoding, status] of cases) {
      const res = await postJson(`${hook.url}/audit`, body, { 'content-encoding': encoding });
      assert.equal(res.status, status, name);
      assert.equal(typeof ((await res.json()) as { error?: unknown }).error, 'string', name);
    }
    assert.equal(
      (await postJson(`${hook.url}/audit`, brotliCompressSync(json), { 'content-encoding': 'br' })).status,
      200,
    );
    const lines = hook
      .logs()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { level: number; msg: string });
    assert.ok(lines.some((l) => l.level === 20 && l.msg === 'request rejected'));
    assert.deepEqual(
      lines.filter((l) => l.level >= 50),
      [],
    );
  } finally {
    await hook.close();
  }
});
