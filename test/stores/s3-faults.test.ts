/**
 * Storage failing in the middle of a multipart upload: each failure must reject put with a clear
 * error, leave no visible object, send AbortMultipartUpload and destroy the input with the error.
 * Bodies are bigger than one 5 MiB part so that the multipart path is taken.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { openS3Store, type S3Store } from '../../worker/stores/s3.js';
import { NotFoundError } from '../../worker/stores/store.js';
import { waitFor } from '../support/ports.js';
import { s3Call, startRecordingProxy, type RecordedRequest, type RecordingProxy } from '../support/recording-proxy.js';
import { startS3rver, type S3rverServer } from '../support/s3rver.js';
import { failingStream, MIB, quiet, randomStream, s3rverConfig } from '../support/store-helpers.js';

const URL = 's3://faults/p';

interface Rig {
  server: S3rverServer;
  proxy: RecordingProxy;
  store: S3Store;
}

async function rig(t: TestContext): Promise<Rig> {
  const server = await startS3rver({ buckets: ['faults'] });
  const proxy = await startRecordingProxy(server.port);
  const store = openS3Store(URL, s3rverConfig(proxy.endpoint, { partSizeMiB: 5, queueSize: 2 }));
  t.after(async () => {
    await store.close();
    await proxy.stop();
    await server.stop();
  });
  return { server, proxy, store };
}

const uploadIdOf = (r: RecordedRequest) => s3Call.query(r).get('uploadId');

/** The multipart upload was started, and an AbortMultipartUpload for that same upload was sent. */
function assertAbortSent(proxy: RecordingProxy): void {
  const parts = proxy.requests.filter(s3Call.isUploadPart);
  assert.ok(proxy.requests.some(s3Call.isCreateMultipart), 'a multipart upload was started');
  assert.ok(parts.length > 0, 'parts were sent');
  const aborts = proxy.requests.filter(s3Call.isAbortMultipart);
  assert.ok(aborts.length > 0, 'AbortMultipartUpload was sent');
  // More than one when the SDK retried an abort the server did not answer.
  for (const abort of aborts)
    assert.equal(uploadIdOf(abort), uploadIdOf(parts[0]!), 'the abort names the upload that was started');
  assert.ok(
    !proxy.requests.some((r) => r.method === 'POST' && s3Call.query(r).has('uploadId')),
    'the upload was never completed',
  );
}

async function assertNothingVisible(store: S3Store, key: string): Promise<void> {
  assert.deepEqual(await store.list(''), []);
  await assert.rejects(store.get(key), NotFoundError);
}

function assertDestroyedWithError(body: Readable): void {
  assert.ok(body.destroyed, 'the input stream was destroyed so its producer stops');
  assert.ok(body.errored instanceof Error, 'the input stream was destroyed with an error');
}

const part1Stored = (proxy: RecordingProxy) => async (): Promise<void> => {
  await waitFor('the first part to reach the server', () =>
    Promise.resolve(proxy.requests.some((r) => s3Call.isUploadPart(r) && r.status === 200)),
  );
};

test('s3 fault: the server answers 500 to UploadPart', async (t) => {
  const { proxy, store } = await rig(t);
  proxy.failWhen = (req) => s3Call.isUploadPart(req);
  const { stream } = randomStream(11 * MIB);
  await assert.rejects(store.put('x/a.db', stream), (err: Error) => {
    assert.match(err.message, /upload of "x\/a\.db" to s3:\/\/faults\/p \(endpoint http:\/\/127\.0\.0\.1:\d+\) failed/);
    assert.match(err.message, /InternalError.*HTTP 500.*storage service failed/);
    assert.match(err.message, /abort/);
    return true;
  });
  assertAbortSent(proxy);
  assertDestroyedWithError(stream);
  proxy.failWhen = () => false;
  await assertNothingVisible(store, 'x/a.db');
});

test('s3 fault: the server stops in the middle of the upload', async (t) => {
  const { server, proxy, store } = await rig(t);
  const body = quiet(new PassThrough());
  const putting = store.put('x/b.db', body);
  body.write(randomBytes(6 * MIB));
  await part1Stored(proxy)();
  await server.halt();
  // Not ended: the upload fails while the producer still has more to send.
  body.write(randomBytes(6 * MIB));
  await assert.rejects(putting, (err: Error) => {
    assert.match(err.message, /upload of "x\/b\.db" to s3:\/\/faults\/p .* failed/);
    assert.match(err.message, /cannot reach the storage service/);
    // The abort could not reach the dead server either; the message says what is left behind.
    assert.match(err.message, /aborting the multipart upload also failed.*no object is visible/);
    return true;
  });
  assertAbortSent(proxy);
  assertDestroyedWithError(body);

  // Bring the server back on the same files: the object never appeared.
  const again = await startS3rver({ directory: server.directory });
  const store2 = openS3Store(URL, s3rverConfig(again.endpoint));
  try {
    await assertNothingVisible(store2, 'x/b.db');
  } finally {
    await store2.close();
    await again.halt();
  }
});

test('s3 fault: the input stream fails in the middle of the upload', async (t) => {
  const { proxy, store } = await rig(t);
  const boom = new Error('snapshot stream broke');
  const body = failingStream(6 * MIB, boom, part1Stored(proxy));
  await assert.rejects(store.put('x/c.db', body), (err: Error) => {
    assert.match(
      err.message,
      /upload of "x\/c\.db" to s3:\/\/faults\/p .* stopped: the data to upload failed: snapshot stream broke/,
    );
    return true;
  });
  assertAbortSent(proxy);
  assert.equal(body.errored, boom, 'the input keeps its own error');
  await assertNothingVisible(store, 'x/c.db');
});

test('s3 fault: the abort signal fires in the middle of the upload', async (t) => {
  const { proxy, store } = await rig(t);
  const controller = new AbortController();
  const body = quiet(new PassThrough());
  const putting = store.put('x/d.db', body, { signal: controller.signal });
  body.write(randomBytes(6 * MIB));
  await part1Stored(proxy)();
  controller.abort(new Error('snapshot.timeout reached'));
  await assert.rejects(putting, /upload of "x\/d\.db" .* stopped: aborted \(snapshot\.timeout reached\)/);
  assertAbortSent(proxy);
  assertDestroyedWithError(body);
  await assertNothingVisible(store, 'x/d.db');
});

test('s3 fault: an already aborted signal uploads nothing', async (t) => {
  const { proxy, store } = await rig(t);
  const { stream } = randomStream(1024);
  await assert.rejects(
    store.put('x/e.db', stream, { signal: AbortSignal.abort(new Error('cancelled')) }),
    /stopped: aborted \(cancelled\)/,
  );
  assert.deepEqual(proxy.requests, []);
  assertDestroyedWithError(stream);
});
