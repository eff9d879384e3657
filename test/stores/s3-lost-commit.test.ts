/**
 * A CompleteMultipartUpload whose answer was lost: S3 completed the upload, the SDK retried, and
 * the retry met 404 NoSuchUpload. The store must count that upload as done when (and only when)
 * the object now at the key carries this upload's token (user metadata given at Create) and size,
 * and, when the part ETags are MD5s, the multipart ETag of the parts it sent. s3rver cannot show
 * this (its multipart ETag has no `-N` and it never answers NoSuchUpload), so these run against
 * test/support/s3-multipart-server.ts.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { multipartEtag, openS3Store, UPLOAD_TOKEN_METADATA } from '../../worker/stores/s3.js';
import {
  startMultipartServer,
  type MultipartServer,
  type S3Fault,
  type S3Request,
} from '../support/s3-multipart-server.js';
import { MIB, randomStream, readAll, s3rverConfig, sha256 } from '../support/store-helpers.js';

const md5 = (data: string | Buffer) => createHash('md5').update(data).digest();

test('multipartEtag: the MD5 of the parts binary MD5s in part order, then -N, quoted', () => {
  // Worked by hand: md5("hello") = 5d41..., md5("world") = 7d79...; md5 of their 32 bytes.
  assert.equal(md5('hello').toString('hex'), '5d41402abc4b2a76b9719d911017c592');
  assert.equal(md5('world').toString('hex'), '7d793037a0760186574b0282f2f435e7');
  assert.equal(
    md5(Buffer.from('5d41402abc4b2a76b9719d911017c5927d793037a0760186574b0282f2f435e7', 'hex')).toString('hex'),
    '065947336a2f2a95ba8899f3675c3be6',
  );
  const parts = [
    { num: 1, etag: '"5d41402abc4b2a76b9719d911017c592"' },
    { num: 2, etag: '"7d793037a0760186574b0282f2f435e7"' },
  ];
  assert.equal(multipartEtag(parts), '"065947336a2f2a95ba8899f3675c3be6-2"');
  // Part order, not list order; unquoted and upper-case ETags are the same MD5s.
  assert.equal(
    multipartEtag([
      { num: 2, etag: '7D793037A0760186574B0282F2F435E7' },
      { num: 1, etag: '5d41402abc4b2a76b9719d911017c592' },
    ]),
    '"065947336a2f2a95ba8899f3675c3be6-2"',
  );
  // The worked example of Cloudflare R2's docs ("mimic the behavior of S3").
  assert.equal(
    multipartEtag([
      { num: 1, etag: '"bce6bf66aeb76c7040fdd5f4eccb78e6"' },
      { num: 2, etag: '"8165449fc15bbf43d3b674595cbcc406"' },
    ]),
    '"f77dc0eecdebcd774a2a22cb393ad2ff-2"',
  );
  // Not MD5s (other services, or already a multipart ETag): nothing can be told.
  assert.equal(multipartEtag([{ num: 1, etag: '"065947336a2f2a95ba8899f3675c3be6-2"' }]), undefined);
  assert.equal(multipartEtag([{ num: 1, etag: '"opaque-etag"' }]), undefined);
  assert.equal(multipartEtag([]), undefined);
});

const BUCKET = 'lost';
const KEY = 'p/lost.db';

async function rig(t: TestContext, sse?: 'aws:kms') {
  const server = await startMultipartServer({ buckets: [BUCKET], ...(sse ? { sse } : {}) });
  const store = openS3Store(`s3://${BUCKET}/p`, s3rverConfig(server.endpoint, { partSizeMiB: 5, queueSize: 2 }));
  t.after(async () => {
    await store.close();
    await server.stop();
  });
  return { server, store };
}

const ofOp = (server: MultipartServer, op: S3Request['op']) => server.requests.filter((r) => r.op === op);

/** The token our CreateMultipartUpload gave the object (the fake checks it arrived as x-amz-meta-*). */
function tokenOf(server: MultipartServer): string {
  const creates = ofOp(server, 'CreateMultipartUpload');
  assert.equal(creates.length, 1);
  const token = creates[0]?.metadata?.[UPLOAD_TOKEN_METADATA];
  assert.match(token ?? '(none)', /^[0-9a-f]{32}$/, 'CreateMultipartUpload carried a random upload token');
  return token ?? '';
}

/** The first Complete takes effect and its answer is lost (500): the SDK sends it again. */
function loseFirstComplete(
  server: MultipartServer,
  then: (r: S3Request) => S3Fault | undefined = () => undefined,
): void {
  let completes = 0;
  server.fault((r) => {
    if (r.op !== 'CompleteMultipartUpload') return undefined;
    return completes++ === 0 ? { lost: { status: 500, code: 'InternalError' } } : then(r);
  });
}

test('s3: a Complete whose answer was lost is retried, meets NoSuchUpload, and the upload counts as done', async (t) => {
  const { server, store } = await rig(t);
  loseFirstComplete(server);
  const input = randomStream(11 * MIB + 5);
  assert.deepEqual(await store.put('lost.db', input.stream), { size: input.data.length });

  const completes = ofOp(server, 'CompleteMultipartUpload');
  assert.deepEqual(
    completes.map((r) => r.status),
    [500, 404],
    'the SDK retried the Complete and the upload was gone',
  );
  const [upload] = ofOp(server, 'CreateMultipartUpload');
  for (const c of completes) {
    assert.equal(c.bucket, BUCKET);
    assert.equal(c.key, KEY);
    assert.equal(c.uploadId, ofOp(server, 'UploadPart')[0]?.uploadId);
    assert.deepEqual(
      c.parts?.map((p) => p.num),
      [1, 2, 3],
    );
  }
  assert.equal(upload?.key, KEY);
  assert.deepEqual(
    ofOp(server, 'HeadObject').map((r) => [r.key, r.status]),
    [[KEY, 200]],
  );
  assert.equal(ofOp(server, 'AbortMultipartUpload').length, 0, 'nothing was aborted');
  assert.deepEqual(server.keys(BUCKET), [KEY], 'one object');
  assert.match(server.object(BUCKET, KEY)?.etag ?? '', /^"[0-9a-f]{32}-3"$/);
  assert.deepEqual(server.object(BUCKET, KEY)?.metadata, { [UPLOAD_TOKEN_METADATA]: tokenOf(server) });
  assert.equal(sha256(await readAll((await store.get('lost.db')).body)), sha256(input.data), 'the object is intact');
  assert.deepEqual(server.openUploads(), []);
});

test('s3: NoSuchUpload while another writer replaced the object fails and leaves their object', async (t) => {
  const { server, store } = await rig(t);
  const theirs = Buffer.from('another writer was here');
  loseFirstComplete(server, () => {
    server.putObject(BUCKET, KEY, theirs);
    return undefined;
  });
  await assert.rejects(store.put('lost.db', randomStream(11 * MIB).stream), (err: Error) => {
    assert.match(err.message, /upload of "lost\.db" to s3:\/\/lost\/p .*failed/);
    assert.match(err.message, /CompleteMultipartUpload answered 404 NoSuchUpload/);
    assert.match(
      err.message,
      /carries no upload token \(x-amz-meta-etcd-autobackup-upload\): it is another writer's \(or an older\) object, not this upload/,
    );
    // The abort meets the same NoSuchUpload: nothing is left to abort, nor queued to abort again.
    assert.match(err.message, /the multipart upload no longer exists, nothing of it is left$/);
    return true;
  });
  assert.deepEqual(
    ofOp(server, 'CompleteMultipartUpload').map((r) => r.status),
    [500, 404],
  );
  assert.deepEqual(server.object(BUCKET, KEY)?.data, theirs, 'their object stays');
  assert.deepEqual(server.keys(BUCKET), [KEY]);
});

test('s3: NoSuchUpload with no object at the key (the upload was aborted) fails', async (t) => {
  const { server, store } = await rig(t);
  server.fault((r) => {
    if (r.op === 'CompleteMultipartUpload') server.dropUploads();
    return undefined;
  });
  await assert.rejects(
    store.put('lost.db', randomStream(11 * MIB).stream),
    /CompleteMultipartUpload answered 404 NoSuchUpload and no object of ours is at the key \(HeadObject: NotFound/,
  );
  assert.deepEqual(server.keys(BUCKET), []);
});

test('s3: any other 404 on the retried Complete fails, even with our object at the key', async (t) => {
  const { server, store } = await rig(t);
  loseFirstComplete(server, () => ({ status: 404, code: 'NoSuchBucket' }));
  await assert.rejects(store.put('lost.db', randomStream(11 * MIB).stream), /NoSuchBucket/);
  assert.deepEqual(
    ofOp(server, 'CompleteMultipartUpload').map((r) => r.status),
    [500, 404],
  );
  assert.equal(ofOp(server, 'HeadObject').length, 0, 'only NoSuchUpload is looked into');
});

test('s3: NoSuchUpload and an object with our token and size but not our multipart ETag fails', async (t) => {
  const { server, store } = await rig(t);
  const size = 11 * MIB;
  const theirs = Buffer.alloc(size, 7);
  // Token and size alone would pass; with MD5 ETags the multipart ETag is checked too.
  loseFirstComplete(server, () => {
    server.putObject(BUCKET, KEY, theirs, { [UPLOAD_TOKEN_METADATA]: tokenOf(server) });
    return undefined;
  });
  await assert.rejects(
    store.put('lost.db', randomStream(size).stream),
    /has ETag "[0-9a-f]{32}", not "[0-9a-f]{32}-3" of the parts sent: it is another writer's \(or an older\) object, not this upload/,
  );
  assert.deepEqual(server.object(BUCKET, KEY)?.data, theirs, 'their object stays');
});

test('s3: under SSE-KMS (part ETags not MD5s) a lost Complete answer counts as done by the upload token and size', async (t) => {
  const { server, store } = await rig(t, 'aws:kms');
  loseFirstComplete(server);
  const input = randomStream(11 * MIB + 5);
  assert.deepEqual(await store.put('lost.db', input.stream), { size: input.data.length });
  assert.deepEqual(
    ofOp(server, 'CompleteMultipartUpload').map((r) => r.status),
    [500, 404],
  );
  assert.deepEqual(
    ofOp(server, 'HeadObject').map((r) => [r.key, r.status]),
    [[KEY, 200]],
  );
  assert.equal(ofOp(server, 'AbortMultipartUpload').length, 0, 'nothing was aborted');
  assert.equal(ofOp(server, 'DeleteObject').length, 0, 'nothing was removed');
  assert.deepEqual(server.keys(BUCKET), [KEY], 'one object');
  assert.deepEqual(server.object(BUCKET, KEY)?.metadata, { [UPLOAD_TOKEN_METADATA]: tokenOf(server) });
  assert.equal(sha256(await readAll((await store.get('lost.db')).body)), sha256(input.data), 'the object is intact');
  assert.deepEqual(server.openUploads(), []);
});

test("s3: under SSE-KMS another writer's object at the key (another token) fails and stays", async (t) => {
  const { server, store } = await rig(t, 'aws:kms');
  const size = 11 * MIB;
  // Same size, so only the token tells it apart.
  const theirs = Buffer.alloc(size, 1);
  loseFirstComplete(server, () => {
    tokenOf(server);
    server.putObject(BUCKET, KEY, theirs, { [UPLOAD_TOKEN_METADATA]: 'f'.repeat(32) });
    return undefined;
  });
  await assert.rejects(store.put('lost.db', randomStream(size).stream), (err: Error) => {
    assert.match(err.message, /CompleteMultipartUpload answered 404 NoSuchUpload/);
    assert.match(
      err.message,
      /carries another upload token \(x-amz-meta-etcd-autobackup-upload\): it is another writer's \(or an older\) object, not this upload/,
    );
    return true;
  });
  assert.deepEqual(server.object(BUCKET, KEY)?.data, theirs, 'their object stays');
  assert.deepEqual(server.keys(BUCKET), [KEY]);
});

test('s3: under SSE-KMS an object with our token but another size fails', async (t) => {
  const { server, store } = await rig(t, 'aws:kms');
  const theirs = Buffer.alloc(11 * MIB - 1, 2);
  loseFirstComplete(server, () => {
    server.putObject(BUCKET, KEY, theirs, { [UPLOAD_TOKEN_METADATA]: tokenOf(server) });
    return undefined;
  });
  await assert.rejects(
    store.put('lost.db', randomStream(11 * MIB).stream),
    new RegExp(
      `NoSuchUpload and the object at the key has this upload's token but its size differs: ${11 * MIB - 1} bytes, not the ${11 * MIB} sent`,
    ),
  );
  assert.deepEqual(server.object(BUCKET, KEY)?.data, theirs, 'the object found stays');
});

test('s3: NoSuchUpload and an SSE-C object at the key (which this store never writes) fails and stays', async (t) => {
  const { server, store } = await rig(t);
  const theirs = Buffer.from('encrypted with their own key');
  loseFirstComplete(server, () => {
    server.putObject(BUCKET, KEY, theirs, { [UPLOAD_TOKEN_METADATA]: tokenOf(server) }, true);
    return undefined;
  });
  await assert.rejects(
    store.put('lost.db', randomStream(11 * MIB).stream),
    /NoSuchUpload and the object at the key cannot be read without SSE-C headers \(HeadObject: [^)]*\), and this store never uploads SSE-C: it is another writer's object, not this upload/,
  );
  assert.deepEqual(
    ofOp(server, 'HeadObject').map((r) => [r.sseCustomerAlgorithm, r.status]),
    [[undefined, 400]],
  );
  assert.deepEqual(server.object(BUCKET, KEY)?.data, theirs, 'their object stays');
});

test('s3: an abort during the retried Complete is honoured: the object found is removed', async (t) => {
  const { server, store } = await rig(t);
  const controller = new AbortController();
  loseFirstComplete(server, () => {
    controller.abort(new Error('snapshot cancelled'));
    return undefined;
  });
  await assert.rejects(
    store.put('lost.db', randomStream(11 * MIB).stream, { signal: controller.signal }),
    /stopped: aborted \(snapshot cancelled\)/,
  );
  assert.deepEqual(server.keys(BUCKET), [], 'no object is left');
});
