/**
 * store.createBucket at worker start (worker/store-setup.ts): a missing bucket is created once, an
 * existing one is left as it is, and with creation off nothing is created and the error says so.
 * S3 and NCP run against s3rver, OCI against the fake Object Storage (which checks signatures and
 * the compartment); a denied CreateBucket comes from a small endpoint that answers as S3 does.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { configSchema } from '../../core/config/schema.js';
import { createLogger } from '../../core/logger.js';
import { createMetrics } from '../../core/metrics.js';
import { prepareStore } from '../../worker/store-setup.js';
import { openNcpStore } from '../../worker/stores/ncp.js';
import { openOciStore } from '../../worker/stores/oci.js';
import { openS3Store } from '../../worker/stores/s3.js';
import { makeApiKey, ociConfigFor, type TestApiKey } from '../support/oci-keys.js';
import { startOciServer, type OciServer } from '../support/oci-server.js';
import { startS3rver, type S3rverServer } from '../support/s3rver.js';
import { readAll, s3rverConfig } from '../support/store-helpers.js';
import { tempDir } from '../support/tmp.js';

const NS = 'createns';
const silent = createLogger({ level: 'silent' });
let s3: S3rverServer;
let oci: OciServer;
let key: TestApiKey;
let dir: { path: string; remove: () => Promise<void> };

before(async () => {
  s3 = await startS3rver({ buckets: ['existing'] });
  dir = await tempDir('create-bucket');
  key = await makeApiKey(dir.path);
  oci = await startOciServer({ namespace: NS, buckets: ['present'], keys: [key] });
});

after(async () => {
  await s3?.stop();
  await oci?.stop();
  await dir?.remove();
});

const bucketDir = (name: string) => existsSync(join(s3.directory, name));

function configFor(url: string, createBucket: boolean) {
  return configSchema.parse({ store: { url, createBucket }, lifecycle: { enabled: false } });
}

test('s3: a missing bucket is created at start, once; an existing one is left with its objects', async () => {
  const store = openS3Store('s3://jujy-etcd-backup-ap-northeast-2/etcd', s3rverConfig(s3.endpoint));
  const existing = openS3Store('s3://existing', s3rverConfig(s3.endpoint));
  const metrics = createMetrics({ defaultMetrics: false });
  try {
    assert.equal(bucketDir('jujy-etcd-backup-ap-northeast-2'), false);
    const config = configFor('s3://jujy-etcd-backup-ap-northeast-2/etcd', true);
    await prepareStore({ config, store, log: silent, metrics });
    assert.equal(bucketDir('jujy-etcd-backup-ap-northeast-2'), true);
    // Once: the second start finds it.
    assert.equal(await store.ensureBucket(true), 'exists');
    await store.put('a.db', Readable.from([Buffer.from('one')]));

    await existing.put('keep.db', Readable.from([Buffer.from('kept')]));
    assert.equal(await existing.ensureBucket(true), 'exists');
    assert.deepEqual(await readAll((await existing.get('keep.db')).body), Buffer.from('kept'));
  } finally {
    await store.close();
    await existing.close();
  }
});

test('s3: with store.createBucket off nothing is created, and ensureBucket says which setting to change', async () => {
  const store = openS3Store('s3://never-made', s3rverConfig(s3.endpoint));
  try {
    // Off: the worker start does not even look (prepareStore), and ensureBucket(false) never creates.
    await prepareStore({
      config: configFor('s3://never-made', false),
      store,
      log: silent,
      metrics: createMetrics({ defaultMetrics: false }),
    });
    await assert.rejects(
      store.ensureBucket(false),
      /bucket "never-made" .* does not exist, and store\.createBucket is off/,
    );
    assert.equal(bucketDir('never-made'), false);
  } finally {
    await store.close();
  }
});

test('ncp: a missing bucket is created through the NCP preset (path style, kr-standard)', async () => {
  const store = openNcpStore('ncp://jujy-etcd-backup-kr?region=kr', s3rverConfig(s3.endpoint));
  try {
    assert.equal(await store.ensureBucket(true), 'created');
    assert.equal(bucketDir('jujy-etcd-backup-kr'), true);
    assert.equal(await store.ensureBucket(true), 'exists');
  } finally {
    await store.close();
  }
});

test('s3: CreateBucket sends the region as LocationConstraint; denied, it names the s3:CreateBucket permission', async () => {
  const seen: string[] = [];
  let createBody = '';
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push(`${req.method ?? ''} ${req.url ?? ''}`);
      if (req.method === 'PUT') createBody = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'HEAD') {
        res.writeHead(404);
        return res.end();
      }
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const store = openS3Store('s3://denied', s3rverConfig(endpoint, { region: 'ap-northeast-2' }));
  try {
    await assert.rejects(store.ensureBucket(true), (err: Error) => {
      assert.match(err.message, /CreateBucket was denied: the credentials need the s3:CreateBucket permission/);
      assert.doesNotMatch(err.message, /S3RVER/);
      return true;
    });
    assert.deepEqual(seen, ['HEAD /denied/', 'PUT /denied/']);
    // CreateBucket asks for the store's region, as S3 requires outside us-east-1.
    assert.match(createBody, /<LocationConstraint>ap-northeast-2<\/LocationConstraint>/);
  } finally {
    await store.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test("oci: a missing bucket is created in the tenancy's root compartment, signed; off leaves it missing", async () => {
  const config = ociConfigFor(key, oci.endpoint);
  const store = openOciStore(`oci://${NS}/jujy-etcd-backup-ap-seoul-1`, config);
  const off = openOciStore(`oci://${NS}/not-made`, config);
  const present = openOciStore(`oci://${NS}/present`, config);
  try {
    await prepareStore({
      config: configFor(`oci://${NS}/jujy-etcd-backup-ap-seoul-1`, true),
      store,
      log: silent,
      metrics: createMetrics({ defaultMetrics: false }),
    });
    assert.deepEqual(oci.createdBuckets, [{ name: 'jujy-etcd-backup-ap-seoul-1', compartmentId: key.tenancy }]);
    assert.equal(await store.ensureBucket(true), 'exists');
    assert.equal(await present.ensureBucket(true), 'exists');
    assert.equal(oci.createdBuckets.length, 1, 'created once, the existing one untouched');
    await assert.rejects(off.ensureBucket(false), /does not exist, and store\.createBucket is off/);
    assert.ok(!oci.bucketNames().includes('not-made'));
  } finally {
    await store.close();
    await off.close();
    await present.close();
  }
});

test('oci: a refused CreateBucket names the policy it needs', async () => {
  const store = openOciStore(`oci://${NS}/refused`, ociConfigFor(key, oci.endpoint));
  oci.fault((r) =>
    r.op === 'CreateBucket'
      ? { status: 404, code: 'NotAuthorizedOrNotFound', message: 'Authorization failed' }
      : undefined,
  );
  try {
    await assert.rejects(store.ensureBucket(true), /CreateBucket was refused \(HTTP 404\).*manage buckets/);
  } finally {
    oci.fault(undefined);
    await store.close();
  }
});

test('oci worker start: a missing bucket is created and the lifecycle policy put, each call signed over its body; a second start writes nothing; a refused policy is a counted warning', async () => {
  const bucket = 'jujy-etcd-backup-us-ashburn-1';
  const url = `oci://${NS}/${bucket}/etcd`;
  const config = configSchema.parse({
    cluster: 'prod',
    store: { url, createBucket: true, oci: ociConfigFor(key, oci.endpoint) },
    lifecycle: { enabled: true, transitionDays: 60, expireDays: 180 },
  });
  const store = openOciStore(url, config.store.oci);
  const metrics = createMetrics({ defaultMetrics: false });
  const warnings: string[] = [];
  const log = createLogger({ level: 'silent' });
  log.warn = (obj: unknown, msg?: string) => void warnings.push(msg ?? String(obj));
  const from = oci.requests.length;
  const sent = () => oci.requests.slice(from);
  try {
    await prepareStore({ config, store, log, metrics });
    assert.deepEqual(
      sent().map((r) => `${r.method} ${r.path} ${r.op} ${r.status ?? '-'}`),
      [
        `HEAD /n/${NS}/b/${bucket} HeadBucket 404`,
        `POST /n/${NS}/b CreateBucket 200`,
        `GET /n/${NS}/b/${bucket}/l GetObjectLifecyclePolicy 404`,
        `PUT /n/${NS}/b/${bucket}/l PutObjectLifecyclePolicy 200`,
      ],
    );
    // Every call verified against the registered key; the writes are signed over their bodies too.
    const keyId = `${key.tenancy}/${key.user}/${key.fingerprint}`;
    for (const r of sent()) {
      assert.equal(r.keyId, keyId, `${r.op} signed with the API key`);
      assert.ok(r.signedHeaders?.includes('(request-target)') && r.signedHeaders.includes('host'));
    }
    for (const r of sent().filter((x) => x.method === 'POST' || x.method === 'PUT')) {
      for (const h of ['content-length', 'content-type', 'x-content-sha256'])
        assert.ok(r.signedHeaders?.includes(h), `${r.op} signs ${h}`);
    }
    const create = sent().find((r) => r.op === 'CreateBucket');
    assert.deepEqual(
      {
        name: (create?.body as { name?: string }).name,
        compartmentId: (create?.body as { compartmentId?: string }).compartmentId,
      },
      { name: bucket, compartmentId: key.tenancy },
    );
    // The policy as the client sent it: archive after 60 days (never the manifests), delete after 180,
    // both limited to this cluster's prefix under the store's path.
    const put = sent().find((r) => r.op === 'PutObjectLifecyclePolicy');
    const items = (put?.body as { items: Record<string, unknown>[] }).items;
    assert.equal(put?.query.toString(), '', 'no query on PutObjectLifecyclePolicy');
    assert.deepEqual(
      items.map((i) => [i.action, i.timeAmount, i.timeUnit, i.isEnabled, i.target, i.objectNameFilter]),
      [
        [
          'ARCHIVE',
          60,
          'DAYS',
          true,
          'objects',
          { inclusionPatterns: ['etcd/prod/snapshots/*'], exclusionPatterns: ['etcd/prod/snapshots/*.manifest.json'] },
        ],
        ['DELETE', 180, 'DAYS', true, 'objects', { inclusionPatterns: ['etcd/prod/snapshots/*'] }],
      ],
    );
    assert.deepEqual(oci.lifecyclePolicy(bucket)?.length, 2);
    assert.deepEqual(warnings, []);

    // A restarted worker: the bucket is there and the policy already right, so nothing is written.
    const second = oci.requests.length;
    await prepareStore({ config, store, log, metrics });
    assert.deepEqual(
      oci.requests.slice(second).map((r) => r.op),
      ['HeadBucket', 'GetObjectLifecyclePolicy'],
    );

    // Without the permission to change the policy the worker still starts: a warning, counted.
    oci.setLifecyclePolicy(bucket, []);
    oci.fault((r) =>
      r.op === 'PutObjectLifecyclePolicy'
        ? { status: 404, code: 'NotAuthorizedOrNotFound', message: 'Authorization failed' }
        : undefined,
    );
    await prepareStore({ config, store, log, metrics });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /could not apply the lifecycle rule/);
    const counted = await metrics.registry.getSingleMetricAsString('etcd_autobackup_store_setup_warnings_total');
    assert.match(counted, /etcd_autobackup_store_setup_warnings_total\{cluster="prod",step="lifecycle"\} 1/);
  } finally {
    oci.fault(undefined);
    await store.close();
  }
});
