import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { lifecycleSchema } from '../../core/config/schema.js';
import { ConfigError } from '../../core/errors.js';
import { applyOciLifecycle } from '../../worker/stores/oci-lifecycle.js';
import { openOciStore, type OciStore } from '../../worker/stores/oci.js';
import { makeApiKey, ociConfigFor } from '../support/oci-keys.js';
import { startOciServer, type LifecycleRule, type OciServer } from '../support/oci-server.js';
import { tempDir } from '../support/tmp.js';

const NS = 'lcns';
let server: OciServer;
let dir: { path: string; remove: () => Promise<void> };
let store: OciStore;

before(async () => {
  dir = await tempDir('oci-lifecycle');
  const key = await makeApiKey(dir.path);
  server = await startOciServer({ namespace: NS, buckets: ['backups'], keys: [key] });
  store = openOciStore(`oci://${NS}/backups/etcd`, ociConfigFor(key, server.endpoint), { maxAttempts: 1 });
});

after(async () => {
  await store?.close();
  await server?.stop();
  await dir?.remove();
});

const lifecycle = (over: Record<string, unknown> = {}) => lifecycleSchema.parse({ enabled: true, ...over });

test('oci lifecycle: archive then expire on the cluster prefix, merged with rules of others, idempotent', async () => {
  // Someone else's rules are already on the bucket.
  const foreign: LifecycleRule = {
    name: 'logs-expire',
    action: 'DELETE',
    timeAmount: 30,
    timeUnit: 'DAYS',
    isEnabled: true,
    target: 'objects',
    objectNameFilter: { inclusionPrefixes: ['logs/'] },
  };
  server.setLifecyclePolicy('backups', [foreign]);

  const dry = await applyOciLifecycle(store, 'prod', lifecycle(), { dryRun: true });
  assert.equal(dry.changed, true);
  assert.equal(dry.prefix, 'etcd/prod/snapshots/');
  assert.deepEqual(
    (server.lifecyclePolicy('backups') ?? []).map((r) => r.name),
    ['logs-expire'],
    'a dry run writes nothing',
  );

  const first = await applyOciLifecycle(store, 'prod', lifecycle());
  assert.equal(first.changed, true);
  assert.deepEqual(first.kept, ['logs-expire']);
  const items = server.lifecyclePolicy('backups') ?? [];
  assert.deepEqual(
    items.map((r) => r.name),
    ['logs-expire', ...first.rules],
  );
  const [archive, expire] = items.slice(1);
  assert.equal(archive?.action, 'ARCHIVE');
  assert.equal(archive?.timeAmount, 60);
  assert.deepEqual(archive?.objectNameFilter, {
    inclusionPatterns: ['etcd/prod/snapshots/*'],
    exclusionPatterns: ['etcd/prod/snapshots/*.manifest.json'],
  });
  assert.equal(expire?.action, 'DELETE');
  assert.equal(expire?.timeAmount, 180);
  assert.deepEqual(expire?.objectNameFilter, { inclusionPatterns: ['etcd/prod/snapshots/*'] });

  server.requests.length = 0;
  const again = await applyOciLifecycle(store, 'prod', lifecycle());
  assert.equal(again.changed, false);
  assert.ok(
    !server.requests.some((r) => r.op === 'PutObjectLifecyclePolicy'),
    'nothing written when the rules are in place',
  );

  // Another cluster sharing the bucket gets its own rules, next to the first cluster's.
  await applyOciLifecycle(store, 'staging', lifecycle({ transitionDays: 0, expireDays: 14 }));
  const names = (server.lifecyclePolicy('backups') ?? []).map((r) => r.name);
  assert.equal(names.length, 4);
  assert.ok(names.some((n) => n.startsWith('etcd-autobackup-staging-') && n.endsWith('-expire')));
  assert.ok(
    !names.some((n) => n.startsWith('etcd-autobackup-staging-') && n.endsWith('-archive')),
    'transitionDays 0: no archive rule',
  );

  // Changed days replace our rules in place; Infrequent Access instead of Archive.
  const changed = await applyOciLifecycle(
    store,
    'prod',
    lifecycle({ transitionDays: 30, expireDays: 90, storageClass: 'InfrequentAccess' }),
  );
  assert.equal(changed.changed, true);
  const prod = (server.lifecyclePolicy('backups') ?? []).filter((r) => r.name.startsWith('etcd-autobackup-prod-'));
  assert.deepEqual(
    prod.map((r) => [r.action, r.timeAmount]),
    [
      ['INFREQUENT_ACCESS', 30],
      ['DELETE', 90],
    ],
  );
  assert.ok(
    (server.lifecyclePolicy('backups') ?? []).some((r) => r.name === 'logs-expire'),
    'the foreign rule survived every change',
  );

  await assert.rejects(
    applyOciLifecycle(store, 'prod', lifecycle({ storageClass: 'GLACIER' })),
    (err: Error) =>
      err instanceof ConfigError && /lifecycle\.storageClass: "GLACIER" is not an OCI storage tier/.test(err.message),
  );
});

test('oci lifecycle: missing service permission and a concurrent edit are explained', async () => {
  server.fault((r) =>
    r.op === 'PutObjectLifecyclePolicy'
      ? {
          status: 400,
          code: 'InsufficientServicePermissions',
          message: 'Permissions granted to the object storage service principal are insufficient',
        }
      : undefined,
  );
  try {
    await assert.rejects(
      applyOciLifecycle(store, 'svc', lifecycle()),
      /InsufficientServicePermissions.*Allow service objectstorage-<region> to manage object-family/,
    );
  } finally {
    server.fault(undefined);
  }
  // Another client rewrites the policy between our read and our write: the conditional PUT must lose.
  let raced = false;
  server.fault((r) => {
    if (r.op === 'PutObjectLifecyclePolicy' && !raced) {
      raced = true;
      server.setLifecyclePolicy('backups', [
        ...(server.lifecyclePolicy('backups') ?? []),
        { name: 'late-edit', action: 'DELETE', timeAmount: 1, timeUnit: 'YEARS', isEnabled: true },
      ]);
    }
    return undefined;
  });
  try {
    await assert.rejects(applyOciLifecycle(store, 'race', lifecycle()), /412 IfMatchFailed.*run again/);
    assert.ok(
      (server.lifecyclePolicy('backups') ?? []).some((r) => r.name === 'late-edit'),
      "the other client's edit was not overwritten",
    );
    const retried = await applyOciLifecycle(store, 'race', lifecycle());
    assert.equal(retried.changed, true);
    assert.ok(retried.kept.includes('late-edit'));
  } finally {
    server.fault(undefined);
  }
});
