/**
 * Incomplete multipart uploads left by a failed upload whose abort could not reach the service.
 * s3rver implements neither ListMultipartUploads (NotImplemented) nor AbortMultipartUpload (405),
 * so the start-up clean-up is tested against a small fake endpoint (test/support/s3-uploads-server.ts)
 * that checks the requests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { openS3Store, staleUploads } from '../../worker/stores/s3.js';
import { waitFor } from '../support/ports.js';
import { s3Call, startRecordingProxy } from '../support/recording-proxy.js';
import { startS3rver } from '../support/s3rver.js';
import { startUploadsServer } from '../support/s3-uploads-server.js';
import { MIB, randomStream, s3rverConfig } from '../support/store-helpers.js';

const HOUR = 3_600_000;

test('staleUploads keeps only uploads started more than olderThan ago', () => {
  const now = Date.parse('2026-12-01T12:00:00Z');
  const at = (msAgo: number) => ({ key: `k${msAgo}`, uploadId: `u${msAgo}`, initiated: new Date(now - msAgo) });
  assert.deepEqual(
    staleUploads([at(10), at(HOUR), at(HOUR + 1), at(5 * HOUR)], now, HOUR).map((u) => u.uploadId),
    [`u${HOUR + 1}`, `u${5 * HOUR}`],
  );
});

test('abortStaleUploads lists under the store prefix, page by page, and aborts only the old ones', async () => {
  const now = Date.now();
  const server = await startUploadsServer(
    'bk',
    [
      { key: 'p/test/a.db.gz', uploadId: 'old-1', initiated: new Date(now - 3 * HOUR) },
      { key: 'p/test/b.db.gz', uploadId: 'new-1', initiated: new Date(now - 60_000) },
      { key: 'p/test/c.db.gz', uploadId: 'old-2', initiated: new Date(now - 2 * HOUR) },
      { key: 'other/d.db.gz', uploadId: 'not-ours', initiated: new Date(now - 9 * HOUR) },
    ],
    2,
  );
  const store = openS3Store('s3://bk/p', s3rverConfig(server.endpoint));
  try {
    assert.equal(await store.abortStaleUploads(HOUR, now), 2);
    assert.deepEqual(server.aborted.sort(), ['old-1', 'old-2']);
    const lists = server.requests.filter((r) => r.method === 'GET').map((r) => new URL(r.url, 'http://x').searchParams);
    assert.equal(lists.length, 2, 'two pages');
    assert.ok(
      lists.every((q) => q.has('uploads') && q.get('prefix') === 'p/'),
      'listed under our prefix only',
    );
    assert.equal(lists[1]?.get('key-marker'), 'p/test/b.db.gz', 'the second page starts after the first');
  } finally {
    await store.close();
    await server.stop();
  }
});

test('s3rver (no ListMultipartUploads): abortStaleUploads fails with a clear error', async () => {
  const server = await startS3rver({ buckets: ['bk'] });
  const store = openS3Store('s3://bk/p', s3rverConfig(server.endpoint));
  try {
    await assert.rejects(store.abortStaleUploads(HOUR), /listing incomplete uploads in s3:\/\/bk\/p .*failed/);
  } finally {
    await store.close();
    await server.stop();
  }
});

test('an abort that failed is sent again with the next upload once the service answers', async () => {
  const server = await startS3rver({ buckets: ['bk'] });
  const proxy = await startRecordingProxy(server.port);
  const store = openS3Store('s3://bk/p', s3rverConfig(proxy.endpoint));
  try {
    proxy.failWhen = (req) => s3Call.isUploadPart(req) || s3Call.isAbortMultipart(req);
    await assert.rejects(
      store.put('x/a.db', randomStream(11 * MIB).stream),
      /aborting the multipart upload also failed/,
    );
    const uploadId = s3Call.query(proxy.requests.find(s3Call.isAbortMultipart) ?? { url: '/' }).get('uploadId');
    assert.ok(uploadId);

    proxy.failWhen = () => false;
    const back = proxy.requests.length;
    await store.put('x/small.json', Readable.from([Buffer.from('{}')]));
    // s3rver answers AbortMultipartUpload with 405 (not implemented), so what is checked is that the
    // abort reached the server again, not its answer.
    await waitFor('the failed abort to be sent again', () =>
      Promise.resolve(
        proxy.requests
          .slice(back)
          .some((r) => s3Call.isAbortMultipart(r) && s3Call.query(r).get('uploadId') === uploadId && r.status !== 500),
      ),
    );
  } finally {
    await store.close();
    await proxy.stop();
    await server.stop();
  }
});
