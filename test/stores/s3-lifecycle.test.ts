/**
 * s3rver answers every ?lifecycle call with NotImplemented, so these tests run the real S3 client
 * against a small endpoint that speaks S3's lifecycle XML (stores what is PUT, returns it on GET,
 * NoSuchLifecycleConfiguration when there is none, AccessDenied on demand), behind the recording
 * proxy that shows which calls were made.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetBucketLifecycleConfigurationCommand, S3Client, type LifecycleRule } from '@aws-sdk/client-s3';
import { configSchema, lifecycleSchema, type LifecycleConfig } from '../../core/config/schema.js';
import { ConfigError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { createMetrics } from '../../core/metrics.js';
import { prepareStore } from '../../worker/store-setup.js';
import { applyS3Lifecycle, type ApplyS3LifecycleOptions } from '../../worker/stores/s3-lifecycle.js';
import { openS3Store } from '../../worker/stores/s3.js';
import { runCli } from '../support/cli.js';
import { startRecordingProxy, type RecordingProxy } from '../support/recording-proxy.js';
import { s3rverConfig } from '../support/store-helpers.js';

const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const FOREIGN = `<?xml version="1.0" encoding="UTF-8"?>
<LifecycleConfiguration xmlns="${XMLNS}"><Rule><ID>logs-expire</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>30</Days></Expiration></Rule><Rule><ID>scratch</ID><Filter><And><Prefix>tmp/</Prefix><Tag><Key>kind</Key><Value>scratch</Value></Tag></And></Filter><Status>Disabled</Status><Transition><Days>30</Days><StorageClass>STANDARD_IA</StorageClass></Transition><NoncurrentVersionExpiration><NoncurrentDays>5</NoncurrentDays></NoncurrentVersionExpiration></Rule><Rule><ID>whole-bucket-archive</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status><Transition><Days>90</Days><StorageClass>DEEP_ARCHIVE</StorageClass></Transition></Rule></LifecycleConfiguration>`;

interface Sent {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

interface LifecycleEndpoint {
  port: number;
  sent: Sent[];
  /** The stored configuration XML, as the last PUT sent it. */
  stored: string | undefined;
  deny: boolean;
  stop(): Promise<void>;
}

function s3Error(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>4442587FB7D0A2F9</RequestId><HostId>host</HostId></Error>`;
}

async function startLifecycleEndpoint(bucket: string, initial?: string): Promise<LifecycleEndpoint> {
  const endpoint: LifecycleEndpoint = { port: 0, sent: [], stored: initial, deny: false, stop: async () => {} };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      endpoint.sent.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const url = new URL(req.url ?? '/', 'http://x');
      const reply = (status: number, xml: string, headers: Record<string, string> = {}) => {
        res.writeHead(status, {
          'content-type': 'application/xml',
          'x-amz-request-id': '4442587FB7D0A2F9',
          ...headers,
        });
        res.end(xml);
      };
      if (endpoint.deny) return reply(403, s3Error('AccessDenied', 'Access Denied'));
      if (url.pathname.replace(/\/$/, '') !== `/${bucket}` || !url.searchParams.has('lifecycle'))
        return reply(501, s3Error('NotImplemented', 'only ?lifecycle here'));
      if (req.method === 'GET') {
        if (endpoint.stored === undefined)
          return reply(404, s3Error('NoSuchLifecycleConfiguration', 'The lifecycle configuration does not exist'));
        return reply(200, endpoint.stored, {
          'x-amz-transition-default-minimum-object-size': 'varies_by_storage_class',
        });
      }
      if (req.method === 'PUT') {
        // S3 insists on an integrity header for this call.
        const hasChecksum = Object.keys(req.headers).some(
          (h) => h === 'content-md5' || h.startsWith('x-amz-checksum-'),
        );
        if (!hasChecksum)
          return reply(400, s3Error('InvalidRequest', 'Missing required header for this request: Content-MD5'));
        endpoint.stored = body;
        return reply(200, '', {
          'x-amz-transition-default-minimum-object-size':
            (req.headers['x-amz-transition-default-minimum-object-size'] as string) ?? 'all_storage_classes_128K',
        });
      }
      return reply(405, s3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.'));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  endpoint.port = (server.address() as AddressInfo).port;
  endpoint.stop = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return endpoint;
}

interface Fixture {
  endpoint: LifecycleEndpoint;
  proxy: RecordingProxy;
  apply(
    lifecycle?: Partial<LifecycleConfig>,
    extra?: Partial<ApplyS3LifecycleOptions>,
  ): ReturnType<typeof applyS3Lifecycle>;
  /** The rules as an S3 client reads them back. */
  rules(): Promise<LifecycleRule[]>;
  calls(): string[];
}

async function withEndpoint(initial: string | undefined, fn: (f: Fixture) => Promise<void>): Promise<void> {
  const endpoint = await startLifecycleEndpoint('backups', initial);
  const proxy = await startRecordingProxy(endpoint.port);
  const s3 = s3rverConfig(proxy.endpoint);
  const reader = new S3Client({
    endpoint: proxy.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
  });
  try {
    await fn({
      endpoint,
      proxy,
      apply: (lifecycle = {}, extra = {}) =>
        applyS3Lifecycle({
          url: 's3://backups/etcd',
          s3,
          cluster: 'prod',
          lifecycle: lifecycleSchema.parse({ enabled: true, ...lifecycle }),
          ...extra,
        }),
      rules: async () =>
        (await reader.send(new GetBucketLifecycleConfigurationCommand({ Bucket: 'backups' }))).Rules ?? [],
      calls: () =>
        proxy.requests.map(
          (r) => `${r.method} ${r.url.replace(/\/?\?.*lifecycle.*/, '?lifecycle')} ${r.status ?? '-'}`,
        ),
    });
  } finally {
    reader.destroy();
    await proxy.stop();
    await endpoint.stop();
  }
}

const ruleBlocks = (xml: string): string[] => xml.match(/<Rule>[\s\S]*?<\/Rule>/g) ?? [];

test('apply merges our rule into the existing ones, once; a second apply sends nothing', async () => {
  await withEndpoint(FOREIGN, async (f) => {
    const foreignRules = await f.rules();
    assert.equal(foreignRules.length, 3);
    f.proxy.requests.length = 0;

    const first = await f.apply();
    assert.equal(first.change, 'added');
    assert.equal(first.prefix, 'etcd/prod/snapshots/');
    assert.deepEqual(first.otherRules, ['logs-expire', 'scratch', 'whole-bucket-archive']);
    assert.deepEqual(first.warnings, [
      'rule "whole-bucket-archive" on prefix "" also moves objects under etcd/prod/snapshots/',
      'store.s3.endpoint is set: GLACIER is an AWS name, which S3-compatible services may reject or map differently',
    ]);
    assert.deepEqual(f.calls(), ['GET /backups?lifecycle 200', 'PUT /backups?lifecycle 200']);

    const put = f.endpoint.sent.find((s) => s.method === 'PUT');
    assert.ok(put);
    assert.equal(
      put.headers['x-amz-transition-default-minimum-object-size'],
      'varies_by_storage_class',
      "the bucket's setting is kept",
    );
    const blocks = ruleBlocks(put.body);
    assert.equal(blocks.length, 5);
    const archive = blocks.filter((b) => b.includes('<ID>etcd-autobackup-archive-prod</ID>'));
    const expire = blocks.filter((b) => b.includes('<ID>etcd-autobackup-expire-prod</ID>'));
    assert.equal(archive.length, 1);
    assert.equal(expire.length, 1);
    // Only objects over 128 KiB move: manifests must stay readable for list, verify and prune.
    for (const part of [
      '<Filter><And><Prefix>etcd/prod/snapshots/</Prefix><ObjectSizeGreaterThan>131072</ObjectSizeGreaterThan></And></Filter>',
      '<Status>Enabled</Status>',
      '<Transition><Days>60</Days><StorageClass>GLACIER</StorageClass></Transition>',
    ]) {
      assert.ok(archive[0]?.includes(part), `${part} in ${archive[0]}`);
    }
    assert.doesNotMatch(archive[0] ?? '', /Expiration/);
    for (const part of [
      '<Filter><Prefix>etcd/prod/snapshots/</Prefix></Filter>',
      '<Status>Enabled</Status>',
      '<Expiration><Days>180</Days></Expiration>',
      '<AbortIncompleteMultipartUpload><DaysAfterInitiation>7</DaysAfterInitiation></AbortIncompleteMultipartUpload>',
    ]) {
      assert.ok(expire[0]?.includes(part), `${part} in ${expire[0]}`);
    }
    assert.doesNotMatch(expire[0] ?? '', /Transition/);
    assert.match(put.body, /<Tag><Key>kind<\/Key><Value>scratch<\/Value><\/Tag>/);
    assert.match(
      put.body,
      /<NoncurrentVersionExpiration><NoncurrentDays>5<\/NoncurrentDays><\/NoncurrentVersionExpiration>/,
    );
    // Read back by a client: the foreign rules are exactly as they were, in their order, ours last.
    const after = await f.rules();
    assert.deepEqual(after.slice(0, 3), foreignRules);
    assert.deepEqual(
      after.slice(3).map((r) => r.ID),
      ['etcd-autobackup-archive-prod', 'etcd-autobackup-expire-prod'],
    );

    f.proxy.requests.length = 0;
    const second = await f.apply();
    assert.equal(second.change, 'unchanged');
    assert.deepEqual(f.calls(), ['GET /backups?lifecycle 200'], 'idempotent: no PUT');
  });
});

test('a changed config updates our rule in place; --dry-run sends nothing', async () => {
  await withEndpoint(FOREIGN, async (f) => {
    await f.apply();
    const before = await f.rules();

    f.proxy.requests.length = 0;
    const dry = await f.apply({ transitionDays: 30, expireDays: 365, storageClass: 'GLACIER_IR' }, { dryRun: true });
    assert.equal(dry.change, 'updated');
    assert.equal(dry.dryRun, true);
    assert.deepEqual(f.calls(), ['GET /backups?lifecycle 200']);
    assert.deepEqual(await f.rules(), before);

    const real = await f.apply({ transitionDays: 30, expireDays: 365, storageClass: 'GLACIER_IR' });
    assert.equal(real.change, 'updated');
    const after = await f.rules();
    assert.equal(after.length, 5);
    assert.deepEqual(after.slice(0, 3), before.slice(0, 3));
    assert.deepEqual(
      after.slice(3).map((r) => [r.ID, r.Transitions, r.Expiration]),
      [
        ['etcd-autobackup-archive-prod', [{ Days: 30, StorageClass: 'GLACIER_IR' }], undefined],
        ['etcd-autobackup-expire-prod', undefined, { Days: 365 }],
      ],
    );

    // Expiry only: the archive rule goes away, the others stay.
    const expiryOnly = await f.apply({ transitionDays: 0, expireDays: 30 });
    assert.equal(expiryOnly.change, 'updated');
    const rules = await f.rules();
    assert.deepEqual(
      rules.map((r) => r.ID),
      ['logs-expire', 'scratch', 'whole-bucket-archive', 'etcd-autobackup-expire-prod'],
    );
    assert.deepEqual(rules[3]?.Expiration, { Days: 30 });

    // Another cluster in the same bucket gets its own rules beside ours.
    await applyS3Lifecycle({
      url: 's3://backups/etcd',
      s3: s3rverConfig(f.proxy.endpoint),
      cluster: 'staging',
      lifecycle: lifecycleSchema.parse({ enabled: true }),
    });
    assert.deepEqual(
      (await f.rules()).slice(3).map((r) => r.ID),
      ['etcd-autobackup-expire-prod', 'etcd-autobackup-archive-staging', 'etcd-autobackup-expire-staging'],
    );
  });
});

test('a bucket without lifecycle configuration gets just our rule', async () => {
  await withEndpoint(undefined, async (f) => {
    const result = await f.apply();
    assert.equal(result.change, 'added');
    assert.deepEqual(f.calls(), ['GET /backups?lifecycle 404', 'PUT /backups?lifecycle 200']);
    assert.deepEqual(
      (await f.rules()).map((r) => r.ID),
      ['etcd-autobackup-archive-prod', 'etcd-autobackup-expire-prod'],
    );
  });
});

test('credentials that may not do it get an error naming the permissions', async () => {
  await withEndpoint(FOREIGN, async (f) => {
    f.endpoint.deny = true;
    await assert.rejects(f.apply(), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(
        err.message,
        /reading the lifecycle configuration of bucket "backups" was refused \(Access Denied\)/,
      );
      assert.match(
        err.message,
        /s3:GetLifecycleConfiguration and s3:PutLifecycleConfiguration on arn:aws:s3:::backups/,
      );
      assert.doesNotMatch(err.message, /S3RVER/, 'no credentials in the message');
      return true;
    });
    assert.ok(f.endpoint.sent.every((s) => s.method === 'GET'));
  });
});

test('rules S3 would refuse are config errors before any call', async () => {
  await withEndpoint(FOREIGN, async (f) => {
    await assert.rejects(
      f.apply({ storageClass: 'Archive' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /lifecycle\.storageClass: "Archive" is not an S3 transition storage class/.test(err.message),
    );
    await assert.rejects(
      f.apply({ storageClass: 'STANDARD_IA', transitionDays: 10 }),
      /lifecycle\.transitionDays: S3 moves objects to STANDARD_IA no sooner than 30 days/,
    );
    await assert.rejects(f.apply({ transitionDays: 0, expireDays: 0 }), /no rule to apply/);
    assert.equal(f.endpoint.sent.length, 0);
  });
  assert.throws(
    () => lifecycleSchema.parse({ transitionDays: 90, expireDays: 60 }),
    /expireDays must be greater than transitionDays/,
  );
});

test('etcd-autobackup lifecycle apply: off unless enabled, then applies and reports', async () => {
  await withEndpoint(FOREIGN, async (f) => {
    const env = {
      ETCD_AUTOBACKUP_STORE: 's3://backups/etcd',
      ETCD_AUTOBACKUP_CLUSTER: 'prod',
      ETCD_AUTOBACKUP_S3_ENDPOINT: f.proxy.endpoint,
      ETCD_AUTOBACKUP_S3_FORCE_PATH_STYLE: 'true',
      ETCD_AUTOBACKUP_S3_REGION: 'us-east-1',
      ETCD_AUTOBACKUP_S3_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      ETCD_AUTOBACKUP_S3_SECRET_ACCESS_KEY: 'not-a-real-secret',
      ETCD_AUTOBACKUP_LOG_LEVEL: 'error',
    };
    const off = await runCli(['lifecycle', 'apply'], { env });
    assert.equal(off.code, 2);
    assert.match(off.stderr, /lifecycle\.enabled is false/);
    assert.equal(f.endpoint.sent.length, 0);

    const dry = await runCli(['lifecycle', 'apply', '--lifecycle', '--dry-run'], { env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      /^would add etcd-autobackup-archive-prod and etcd-autobackup-expire-prod in bucket backups \(dry run: nothing changed\)/,
    );
    assert.equal(f.endpoint.stored, FOREIGN);

    const real = await runCli(['lifecycle', 'apply', '--lifecycle', '--lifecycle-expire-days', '400'], { env });
    assert.equal(real.code, 0, real.stderr);
    assert.match(
      real.stdout,
      /^etcd-autobackup-archive-prod and etcd-autobackup-expire-prod in bucket backups: added\n {2}prefix {7}etcd\/prod\/snapshots\/\n {2}archive {6}to GLACIER after 60 days \(objects over 128 KiB: snapshots, not manifests\)\n {2}expire {7}after 400 days\n/,
    );
    assert.match(real.stdout, /other rules {2}logs-expire, scratch, whole-bucket-archive \(kept as they were\)/);
    const again = await runCli(['lifecycle', 'apply', '--lifecycle', '--lifecycle-expire-days', '400', '--json'], {
      env,
    });
    assert.equal((JSON.parse(again.stdout) as { change: string }).change, 'unchanged');
    assert.doesNotMatch(real.stdout + real.stderr + again.stdout + again.stderr, /not-a-real-secret/);
  });
});

test("worker start (prepareStore): the original's rule is applied once and merged; denied, it is a counted warning", async () => {
  await withEndpoint(FOREIGN, async (f) => {
    const config = configSchema.parse({
      cluster: 'prod',
      store: { url: 's3://backups/etcd', s3: s3rverConfig(f.proxy.endpoint) },
      lifecycle: { enabled: true, transitionDays: 60, expireDays: 180 },
    });
    const store = openS3Store(config.store.url, config.store.s3);
    const metrics = createMetrics({ defaultMetrics: false });
    const warnings: string[] = [];
    const log = createLogger({ level: 'silent' });
    log.warn = (obj: unknown, msg?: string) => void warnings.push(msg ?? String(obj));
    try {
      f.proxy.requests.length = 0;
      await prepareStore({ config, store, log, metrics });
      assert.deepEqual(f.calls(), ['GET /backups?lifecycle 200', 'PUT /backups?lifecycle 200']);
      const put = f.endpoint.sent.find((s) => s.method === 'PUT');
      const blocks = ruleBlocks(put?.body ?? '');
      assert.equal(blocks.length, 5, 'the three foreign rules are kept');
      const archive = blocks.find((b) => b.includes('<ID>etcd-autobackup-archive-prod</ID>')) ?? '';
      assert.match(archive, /<Transition><Days>60<\/Days><StorageClass>GLACIER<\/StorageClass><\/Transition>/);
      // Manifests (small objects) are never archived.
      assert.match(archive, /<ObjectSizeGreaterThan>131072<\/ObjectSizeGreaterThan>/);
      const expire = blocks.find((b) => b.includes('<ID>etcd-autobackup-expire-prod</ID>')) ?? '';
      assert.match(expire, /<Expiration><Days>180<\/Days><\/Expiration>/);

      // The next start finds it in place: nothing is written.
      f.proxy.requests.length = 0;
      await prepareStore({ config, store, log, metrics });
      assert.deepEqual(f.calls(), ['GET /backups?lifecycle 200']);

      // Without the permission the worker still starts; the failure is logged and counted.
      f.endpoint.deny = true;
      await prepareStore({ config, store, log, metrics });
      const counted = (await metrics.storeSetupWarnings.get()).values.find((v) => v.labels.step === 'lifecycle');
      assert.equal(counted?.value, 1);
      assert.equal(warnings.filter((w) => /could not apply the lifecycle rule/.test(w)).length, 1);
    } finally {
      await store.close();
    }
  });
});
