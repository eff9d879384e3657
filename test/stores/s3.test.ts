import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { loadConfig } from '../../core/config/index.js';
import { ConfigError, SnapshotError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { takeBackup } from '../../worker/backup.js';
import { openStore } from '../../worker/stores/open.js';
import { openS3Store, UPLOAD_TOKEN_METADATA } from '../../worker/stores/s3.js';
import { NotFoundError } from '../../worker/stores/store.js';
import { fillEtcd, startEtcd } from '../support/etcd.js';
import { s3Call, startRecordingProxy, type RecordingProxy } from '../support/recording-proxy.js';
import { startS3rver, S3RVER_CREDENTIALS, type S3rverServer } from '../support/s3rver.js';
import { backupAndReadBack, MIB, randomStream, readAll, s3rverConfig, sha256 } from '../support/store-helpers.js';

let server: S3rverServer;
let proxy: RecordingProxy;

before(async () => {
  server = await startS3rver({ buckets: ['backups'] });
  proxy = await startRecordingProxy(server.port);
});

after(async () => {
  await proxy?.stop();
  await server?.stop();
});

test('s3: put, list across pages, get and delete, all relative to the URL prefix', async () => {
  const store = openS3Store('s3://backups/team/etcd', s3rverConfig(proxy.endpoint), { pageSize: 2 });
  // A sibling prefix that starts with the same letters must not leak into the listing.
  const sibling = openS3Store('s3://backups/team/etcd-other', s3rverConfig(server.endpoint));
  try {
    assert.equal(store.location, 's3://backups/team/etcd');
    await sibling.put('a/1.db', Readable.from([Buffer.from('not mine')]));
    const small: Record<string, Buffer> = {
      'a/1.db': Buffer.from('one'),
      'a/2.db': Buffer.from('two!'),
      'a/3.db': Buffer.from(''),
      'b/1.db': Buffer.from('b one'),
      'c.manifest.json': Buffer.from(JSON.stringify({ hello: 'ü' })),
    };
    for (const [key, data] of Object.entries(small)) {
      assert.deepEqual(await store.put(key, Readable.from([data]), { contentType: 'application/octet-stream' }), {
        size: data.length,
      });
    }
    // Bigger than one 5 MiB part: goes through CreateMultipartUpload / UploadPart / Complete.
    const big = randomStream(6 * MIB + 123);
    assert.deepEqual(await store.put('big/1.db', big.stream), { size: big.data.length });
    assert.ok(proxy.requests.some(s3Call.isCreateMultipart), 'the 6 MiB object used a multipart upload');

    proxy.requests.length = 0;
    const all = await store.list('');
    assert.deepEqual(
      all.map((o) => [o.key, o.size]),
      [
        ['a/1.db', 3],
        ['a/2.db', 4],
        ['a/3.db', 0],
        ['b/1.db', 5],
        ['big/1.db', big.data.length],
        ['c.manifest.json', small['c.manifest.json']!.length],
      ],
    );
    assert.ok(all.every((o) => o.modified instanceof Date));
    const listCalls = proxy.requests.filter((r) => r.method === 'GET' && s3Call.query(r).has('prefix'));
    assert.equal(listCalls.length, 3, 'six keys at two per page take three list calls');
    assert.ok(
      listCalls.every((r) => s3Call.query(r).get('list-type') === '2'),
      's3 lists with ListObjectsV2',
    );
    assert.deepEqual(
      (await store.list('a/')).map((o) => o.key),
      ['a/1.db', 'a/2.db', 'a/3.db'],
    );
    assert.deepEqual(await store.list('nothing-here/'), []);

    for (const [key, data] of Object.entries(small)) {
      const got = await store.get(key);
      assert.equal(got.size, data.length);
      assert.deepEqual(await readAll(got.body), data);
    }
    const gotBig = await store.get('big/1.db');
    assert.equal(sha256(await readAll(gotBig.body)), sha256(big.data));
    await assert.rejects(
      store.get('a/missing.db'),
      (err) => err instanceof NotFoundError && /a\/missing\.db/.test(err.message),
    );

    await store.delete('a/2.db');
    await store.delete('a/2.db');
    await store.delete('never/was.db');
    assert.deepEqual(
      (await store.list('a/')).map((o) => o.key),
      ['a/1.db', 'a/3.db'],
    );
    await assert.rejects(store.get('a/2.db'), NotFoundError);
    assert.deepEqual(
      (await sibling.list('')).map((o) => o.key),
      ['a/1.db'],
    );
  } finally {
    await store.close();
    await sibling.close();
  }
});

test('s3: a bucket without prefix keeps keys as given', async () => {
  const store = openS3Store('s3://backups', s3rverConfig(server.endpoint));
  try {
    await store.put('root-level.db', Readable.from([Buffer.from('x')]));
    const keys = (await store.list('')).map((o) => o.key);
    assert.ok(keys.includes('root-level.db'));
    assert.ok(keys.includes('team/etcd/a/1.db'), 'objects under other prefixes are visible from the bucket root');
    await store.delete('root-level.db');
  } finally {
    await store.close();
  }
});

test('s3: s3rver takes the upload token a multipart upload gives the object, and answers it on HeadObject', async () => {
  const store = openS3Store('s3://backups/token', s3rverConfig(server.endpoint, { partSizeMiB: 5 }));
  const reader = new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    // A copy: the SDK marks the credentials object it is given, which s3rverConfig spreads.
    credentials: { ...S3RVER_CREDENTIALS },
  });
  try {
    const input = randomStream(11 * MIB);
    await store.put('multi.db', input.stream);
    const head = await reader.send(new HeadObjectCommand({ Bucket: 'backups', Key: 'token/multi.db' }));
    assert.match(head.Metadata?.[UPLOAD_TOKEN_METADATA] ?? '(none)', /^[0-9a-f]{32}$/);
    assert.equal(head.ContentLength, input.data.length);
    await store.delete('multi.db');
  } finally {
    reader.destroy();
    await store.close();
  }
});

test('s3: errors name the bucket and what to check, never the secret', async () => {
  const secret = 'super-secret-value-123';
  const missing = openS3Store('s3://no-such-bucket/p', s3rverConfig(server.endpoint));
  const badKeys = openS3Store(
    's3://backups/p',
    s3rverConfig(server.endpoint, { accessKeyId: 'WRONG', secretAccessKey: secret }),
  );
  try {
    await assert.rejects(missing.list(''), (err: Error) => {
      assert.match(err.message, /s3:\/\/no-such-bucket\/p/);
      assert.match(err.message, new RegExp(server.endpoint.replace(/[.:/]/g, '\\$&')));
      assert.match(err.message, /bucket does not exist/);
      return true;
    });
    await assert.rejects(missing.put('x.db', Readable.from([Buffer.from('x')])), /NoSuchBucket.*bucket does not exist/);
    await assert.rejects(badKeys.list(''), (err: Error) => {
      assert.match(err.message, /InvalidAccessKeyId.*check the credentials/);
      assert.doesNotMatch(err.message, new RegExp(secret));
      return true;
    });
  } finally {
    await missing.close();
    await badKeys.close();
  }
});

test('s3: URL and option mistakes are config errors', () => {
  const s3 = s3rverConfig(server.endpoint);
  assert.throws(
    () => openS3Store('s3://AKIA:hunter2@bucket/p', s3),
    (err: Error) => err instanceof ConfigError && !err.message.includes('hunter2'),
  );
  assert.throws(() => openS3Store('s3:///p', s3), ConfigError);
  assert.throws(() => openS3Store('s3://bucket/a//b', s3), ConfigError);
  assert.throws(() => openS3Store('s3://bucket/p?region=eu', s3), /unknown parameter "region"/);
  assert.throws(() => openS3Store('s3://bucket/p', { ...s3, secretAccessKey: undefined }), /go together/);
  assert.throws(() => openS3Store('s3://bucket/p', { ...s3, caFile: '/nonexistent/ca.pem' }), /store\.s3\.caFile/);
});

test('s3: takeBackup from a real etcd writes the object and its manifest; the object hashes right', async () => {
  const etcd = await startEtcd();
  try {
    await fillEtcd(etcd.client, 300);
    const config = loadConfig({
      env: {},
      flags: {
        endpoints: etcd.endpoint,
        // gzip: the object is gunzipped below (the codecs tests cover zstd on S3).
        compression: 'gzip',
        store: 's3://backups/clusters',
        's3-endpoint': server.endpoint,
        's3-region': 'us-east-1',
        's3-force-path-style': true,
        's3-access-key-id': S3RVER_CREDENTIALS.accessKeyId,
        's3-secret-access-key': S3RVER_CREDENTIALS.secretAccessKey,
      },
    });
    const store = await openStore(config);
    try {
      const { manifest, snapshot } = await backupAndReadBack(config, store);
      assert.equal(
        snapshot.subarray(manifest.dbSize).toString('hex'),
        manifest.sha256,
        "etcd's trailer is kept for restore",
      );
    } finally {
      await store.close();
    }
  } finally {
    await etcd.stop();
  }
});

test('s3: a storage failure mid-upload fails takeBackup at the upload stage and publishes nothing', async () => {
  const etcd = await startEtcd();
  try {
    // Uncompressed and bigger than one 5 MiB part, so the multipart path is the one that fails.
    await fillEtcd(etcd.client, 3000, 2048);
    const config = loadConfig({
      env: {},
      flags: {
        endpoints: etcd.endpoint,
        store: 's3://backups/failing',
        's3-endpoint': proxy.endpoint,
        's3-region': 'us-east-1',
        's3-force-path-style': true,
        's3-access-key-id': S3RVER_CREDENTIALS.accessKeyId,
        's3-secret-access-key': S3RVER_CREDENTIALS.secretAccessKey,
      },
      overrides: { 'snapshot.compression': 'none', 'store.s3.partSizeMiB': 5 },
    });
    const store = await openStore(config);
    proxy.requests.length = 0;
    proxy.failWhen = (req) => s3Call.isUploadPart(req);
    try {
      await assert.rejects(
        takeBackup({ config, store, log: createLogger({ level: 'fatal' }), cause: { source: 'manual' } }),
        (err: Error) => {
          assert.ok(err instanceof SnapshotError, String(err));
          assert.equal(err.stage, 'upload');
          assert.match(err.message, /s3:\/\/backups\/failing .*InternalError.*nothing was published/);
          return true;
        },
      );
      assert.ok(proxy.requests.some(s3Call.isAbortMultipart), 'the multipart upload was aborted');
      proxy.failWhen = () => false;
      assert.deepEqual(await store.list(''), []);
    } finally {
      proxy.failWhen = () => false;
      await store.close();
    }
  } finally {
    await etcd.stop();
  }
});
