import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { configSchema } from '../../core/config/index.js';
import { ConfigError } from '../../core/errors.js';
import { NCP_ENDPOINTS, openNcpStore } from '../../worker/stores/ncp.js';
import { openStore } from '../../worker/stores/open.js';
import { S3Store } from '../../worker/stores/s3.js';
import { NotFoundError } from '../../worker/stores/store.js';
import { s3Call, startRecordingProxy, type RecordingProxy } from '../support/recording-proxy.js';
import { startS3rver, S3RVER_CREDENTIALS, type S3rverServer } from '../support/s3rver.js';
import { MIB, randomStream, readAll, s3rverConfig, sha256 } from '../support/store-helpers.js';

let server: S3rverServer;
let proxy: RecordingProxy;

before(async () => {
  server = await startS3rver({ buckets: ['ncp-bucket'] });
  proxy = await startRecordingProxy(server.port);
});

after(async () => {
  await proxy?.stop();
  await server?.stop();
});

const listCalls = () => proxy.requests.filter((r) => r.method === 'GET' && s3Call.query(r).has('prefix'));

test('ncp: round trip over V1 listing with Marker paging', async () => {
  // No region/forcePathStyle here: the ncp preset supplies them; the endpoint points at s3rver.
  const store = openNcpStore(
    'ncp://ncp-bucket/etcd?region=kr',
    s3rverConfig(proxy.endpoint, { region: undefined, forcePathStyle: undefined }),
    {
      pageSize: 2,
    },
  );
  try {
    assert.equal(store.location, 'ncp://ncp-bucket/etcd?region=kr');
    const keys = [
      'c1/snapshots/1.db.gz',
      'c1/snapshots/1.manifest.json',
      'c1/snapshots/2.db.gz',
      'c1/snapshots/2.manifest.json',
      'c2/x.db',
    ];
    for (const key of keys) await store.put(key, Readable.from([Buffer.from(key)]));
    const big = randomStream(5 * MIB + 1);
    await store.put('c1/big.db', big.stream);

    proxy.requests.length = 0;
    const listed = await store.list('');
    assert.deepEqual(
      listed.map((o) => o.key),
      [...keys, 'c1/big.db'].sort(),
    );
    const calls = listCalls();
    assert.equal(calls.length, 3, 'six keys at two per page take three list calls');
    for (const call of calls) {
      const q = s3Call.query(call);
      assert.equal(q.get('list-type'), null, `V1 ListObjects, not V2: ${call.url}`);
      assert.ok(!q.has('continuation-token'));
      assert.ok(
        call.url.startsWith('/ncp-bucket?') || call.url.startsWith('/ncp-bucket/?'),
        `path-style addressing: ${call.url}`,
      );
    }
    assert.equal(s3Call.query(calls[0]!).get('marker'), null, 'the first page starts without a marker');
    assert.equal(
      s3Call.query(calls[1]!).get('marker'),
      'etcd/c1/snapshots/1.db.gz',
      'the next page continues after the last key',
    );

    assert.deepEqual(
      (await store.list('c1/snapshots/')).map((o) => o.key),
      keys.slice(0, 4),
    );
    assert.deepEqual(await readAll((await store.get('c2/x.db')).body), Buffer.from('c2/x.db'));
    assert.equal(sha256(await readAll((await store.get('c1/big.db')).body)), sha256(big.data));
    await assert.rejects(store.get('c2/none.db'), NotFoundError);
    await store.delete('c2/x.db');
    await store.delete('c2/x.db');
    assert.deepEqual(
      (await store.list('c2/')).map((o) => o.key),
      [],
    );
  } finally {
    await store.close();
  }
});

test('ncp: openStore picks the preset from the URL and store.s3.endpoint overrides the endpoint', async () => {
  const config = configSchema.parse({
    store: { url: 'ncp://ncp-bucket/via-open?region=kr', s3: { endpoint: proxy.endpoint, ...S3RVER_CREDENTIALS } },
  });
  const store = await openStore(config);
  try {
    assert.ok(store instanceof S3Store);
    assert.equal(store.endpoint, proxy.endpoint);
    await store.put('k.db', Readable.from([Buffer.from('v')]));
    proxy.requests.length = 0;
    assert.deepEqual(
      (await store.list('')).map((o) => o.key),
      ['k.db'],
    );
    assert.equal(listCalls().length, 1);
    assert.equal(s3Call.query(listCalls()[0]!).get('list-type'), null);
  } finally {
    await store.close();
  }
});

test('ncp: regions map to NCP endpoints; unknown regions are config errors', () => {
  const s3 = configSchema.parse({}).store.s3;
  const cases: Array<[string, string]> = [
    ['ncp://b/p', 'https://kr.object.ncloudstorage.com'],
    ['ncp://b/p?region=kr', 'https://kr.object.ncloudstorage.com'],
    ['ncp://b/p?region=kr-standard', 'https://kr.object.ncloudstorage.com'],
    ['ncp://b/p?region=us', 'https://us.object.ncloudstorage.com'],
    ['ncp://b/p?region=sg', 'https://sg.object.ncloudstorage.com'],
    ['ncp://b/p?region=jp', 'https://jp.object.ncpstorage.com'],
    ['ncp://b/p?region=de', 'https://de.object.ncloudstorage.com'],
  ];
  for (const [url, endpoint] of cases) {
    // Constructing a store opens no connection.
    const store = openNcpStore(url, s3);
    assert.equal(store.endpoint, endpoint, url);
    assert.equal(NCP_ENDPOINTS[store.location.replace(/.*region=/, '')], endpoint);
  }
  assert.throws(
    () => openNcpStore('ncp://b/p?region=mars', s3),
    (err: Error) => err instanceof ConfigError && /unknown NCP region "mars"/.test(err.message),
  );
  assert.throws(() => openNcpStore('ncp://b/p?zone=kr', s3), /unknown parameter "zone"/);
});
