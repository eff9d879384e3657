import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { loadConfig } from '../../core/config/index.js';
import { createLogger } from '../../core/logger.js';
import { takeBackup } from '../../worker/backup.js';
import { loadKeyRing } from '../../worker/crypto/keys.js';
import {
  drillKey,
  etcdVersionCheck,
  readDrillRecord,
  revisionCheck,
  runDrill,
  saveDrillRecord,
  spaceCheck,
  type DrillOptions,
  type DrillRecord,
} from '../../worker/drill.js';
import { drillAfterSnapshot, isDrillDue } from '../../worker/drill-hook.js';
import { manifestKey, type Manifest } from '../../worker/manifest.js';
import { openStore } from '../../worker/stores/open.js';
import type { Store } from '../../worker/stores/store.js';
import { FileStore } from '../../worker/stores/file.js';
import { fillEtcd, startEtcd, type EtcdServer } from '../support/etcd.js';
import { startS3rver, S3RVER_CREDENTIALS, type S3rverServer } from '../support/s3rver.js';
import { tempDir } from '../support/tmp.js';

const log = createLogger({ level: 'silent' });
let source: EtcdServer;
let other: EtcdServer;
let s3: S3rverServer;
let work: { path: string; remove: () => Promise<void> };
let fileStore: FileStore;
let keyFile: string;

before(async () => {
  [source, other, s3] = await Promise.all([startEtcd(), startEtcd(), startS3rver({ buckets: ['drills'] })]);
  work = await tempDir('drill');
  fileStore = new FileStore(join(work.path, 'store'));
  await fillEtcd(source.client, 120, 32, '/registry/pods/ns/');
  await fillEtcd(source.client, 30, 32, '/registry/secrets/ns/');
  // More revisions than the source, so the counts at the source's revision exist and differ.
  await fillEtcd(other.client, 200, 32, '/registry/pods/ns/');
  keyFile = join(work.path, 'key');
  await writeFile(keyFile, randomBytes(32).toString('base64'));
});

after(async () => {
  await Promise.all([source?.stop(), other?.stop(), s3?.stop()]);
  await work?.remove();
});

function configFor(etcd: EtcdServer, flags: Record<string, string | boolean> = {}) {
  return loadConfig({ env: {}, flags: { endpoints: etcd.endpoint, ...flags } });
}

async function backup(etcd: EtcdServer, store: Store, flags: Record<string, string | boolean> = {}): Promise<Manifest> {
  return takeBackup({ config: configFor(etcd, flags), store, log, cause: { source: 'manual' } });
}

async function drill(store: Store, manifest: Manifest, extra: Partial<DrillOptions> = {}): Promise<DrillRecord> {
  const scratchDir = join(work.path, `scratch-${randomBytes(3).toString('hex')}`);
  const record = await runDrill({
    store,
    manifest,
    etcdctl: 'etcdctl',
    etcd: 'etcd',
    scratchDir,
    startTimeoutMs: 60_000,
    freeSpaceMargin: 0,
    log,
    ...extra,
  });
  assert.deepEqual(await readdir(scratchDir), [], 'the scratch dir is emptied whatever happened');
  return record;
}

function check(record: DrillRecord, name: string) {
  return record.checks.find((c) => c.name === name);
}

test('decisions: etcd version, free space, revision', () => {
  assert.equal(etcdVersionCheck('3.4.23', '3.4.30').ok, true);
  assert.equal(etcdVersionCheck('3.5.0', '3.4.30').ok, true);
  assert.match(etcdVersionCheck('3.4.23', '3.6.1').detail, /older than the snapshot's etcd 3\.6\.1; install etcd 3\.6/);
  assert.equal(etcdVersionCheck('3.4.23', '3.6.1').ok, false);
  assert.equal(spaceCheck(3000, 1000, 1000, '/s').ok, true);
  assert.match(spaceCheck(2999, 1000, 1000, '/s').detail, /only 2999 bytes free in \/s; .* needs 3000/);
  const m = { etcd: { revision: 10 }, hashKV: { currentRevision: 10 } } as unknown as Manifest;
  assert.equal(revisionCheck(10, m).ok, true);
  assert.equal(revisionCheck(11, m).ok, false);
  const moved = { etcd: { revision: 10 }, hashKV: { currentRevision: 12 } } as unknown as Manifest;
  assert.equal(revisionCheck(11, moved).ok, true);
  assert.equal(revisionCheck(9, moved).ok, false);
});

test('drill: a gzip snapshot on the file store restores, boots, and matches revision, HashKV and counts', async () => {
  const manifest = await backup(source, fileStore);
  const record = await drill(fileStore, manifest);
  assert.equal(record.ok, true, JSON.stringify(record.checks));
  assert.deepEqual(
    record.checks.map((c) => c.name),
    [
      'free-space',
      'etcd-version',
      'download',
      'restore',
      'start',
      'linearizable-read',
      'revision',
      'hashkv',
      'key-counts',
    ],
  );
  assert.match(check(record, 'key-counts')?.detail ?? '', /150 keys in 2 prefixes/);
  assert.equal(record.tool?.name, 'etcdctl');
  assert.match(record.etcdVersion ?? '', /^3\.4\./);
  await saveDrillRecord(fileStore, record);
  assert.deepEqual(await readDrillRecord(fileStore, manifest.cluster, manifest.id), record);
  assert.ok((await readFile(join(work.path, 'store', drillKey(manifest.cluster, manifest.id)))).length > 0);
});

test('drill: an encrypted snapshot on s3rver passes with its key and fails, without crashing, with the wrong one', async () => {
  const flags = {
    store: 's3://drills/backups',
    's3-endpoint': s3.endpoint,
    's3-access-key-id': S3RVER_CREDENTIALS.accessKeyId,
    's3-secret-access-key': S3RVER_CREDENTIALS.secretAccessKey,
    's3-region': 'us-east-1',
    's3-force-path-style': true,
    'encryption-key-file': keyFile,
  };
  const config = configFor(source, flags);
  const store = await openStore(config);
  try {
    const manifest = await backup(source, store, flags);
    assert.ok(manifest.encryption);
    const ok = await drill(store, manifest, { keys: await loadKeyRing(config.encryption) });
    assert.equal(ok.ok, true, JSON.stringify(ok.checks));

    const wrongFile = join(work.path, 'wrong-key');
    await writeFile(wrongFile, randomBytes(32).toString('base64'));
    const wrong = await loadKeyRing(configFor(source, { ...flags, 'encryption-key-file': wrongFile }).encryption);
    const bad = await drill(store, manifest, { keys: wrong });
    assert.equal(bad.ok, false);
    assert.match(bad.failure ?? '', /^download: .*key/);
    const none = await drill(store, manifest);
    assert.match(none.failure ?? '', /^download: .*no key is configured/);
  } finally {
    await store.close();
  }
});

test('drill: a corrupted object fails at download', async () => {
  const manifest = await backup(source, fileStore, { compression: 'none' });
  const file = join(work.path, 'store', manifest.key);
  const bytes = await readFile(file);
  bytes[5000] = (bytes[5000] as number) ^ 0xff;
  await writeFile(file, bytes);
  const record = await drill(fileStore, manifest);
  assert.equal(record.ok, false);
  assert.match(record.failure ?? '', /^download: .*is corrupt: SHA-256 mismatch/);
});

test('drill: a snapshot from a newer etcd than the local one is refused before downloading', async () => {
  const manifest = await backup(source, fileStore);
  const newer = { ...manifest, etcd: { ...manifest.etcd, version: '3.6.1' } };
  const record = await drill(fileStore, newer);
  assert.equal(record.ok, false);
  assert.match(
    record.failure ?? '',
    /^etcd-version: the local etcd is 3\.4\.\d+, older than the snapshot's etcd 3\.6\.1/,
  );
  assert.equal(check(record, 'download'), undefined);
});

test('drill: an etcd that does not start, and one killed during the drill, are failed drills with the reason', async () => {
  const manifest = await backup(source, fileStore);
  const broken = join(work.path, 'etcd-broken');
  await writeFile(
    broken,
    '#!/bin/sh\nif [ "$1" = --version ]; then exec etcd --version; fi\necho "panic: cannot open database" >&2\nexit 3\n',
  );
  await chmod(broken, 0o755);
  const notStarted = await drill(fileStore, manifest, { etcd: broken });
  assert.equal(notStarted.ok, false);
  assert.match(notStarted.failure ?? '', /^start: etcd exited \(code 3\): panic: cannot open database/);

  const killed = await drill(fileStore, manifest, {
    onEtcdReady: async (child) => {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
    },
  });
  assert.equal(killed.ok, false);
  assert.match(killed.failure ?? '', /^linearizable-read: etcd exited \(signal SIGKILL\).*during the drill/);
});

test("drill: another etcd's snapshot published under a copied manifest fails on revision, HashKV and counts", async () => {
  const real = await backup(source, fileStore);
  const foreign = await backup(other, fileStore);
  // The object and its size/hash facts are the other etcd's, so download and restore pass; only the
  // comparisons with what the source recorded can tell.
  const forged: Manifest = {
    ...real,
    id: `${real.id.slice(0, -4)}f0f0`,
    key: foreign.key,
    sha256: foreign.sha256,
    dbSize: foreign.dbSize,
    snapshotSize: foreign.snapshotSize,
    storedSize: foreign.storedSize,
  };
  await fileStore.put(manifestKey(forged.cluster, forged.id), Readable.from([JSON.stringify(forged)]), {});
  const record = await drill(fileStore, forged);
  assert.equal(record.ok, false);
  for (const name of ['download', 'restore', 'start', 'linearizable-read'])
    assert.equal(check(record, name)?.ok, true, name);
  for (const name of ['revision', 'hashkv', 'key-counts']) assert.equal(check(record, name)?.ok, false, name);
  assert.match(
    check(record, 'key-counts')?.detail ?? '',
    /\/registry\/pods\/: 150 keys, expected 120; \/registry\/secrets\/: 0 keys, expected 30/,
  );
});

test('drill.afterSnapshot: every Nth published snapshot is drilled and its record written', async () => {
  assert.deepEqual(
    [1, 2, 3, 4].map((n) => isDrillDue(n, 2)),
    [false, true, false, true],
  );
  assert.equal(isDrillDue(5, 0), false);
  const scratch = join(work.path, 'hook-scratch');
  const base = configFor(source);
  const config = { ...base, drill: { ...base.drill, afterSnapshot: 2, scratchDir: scratch, freeSpaceMargin: 0 } };
  const hook = drillAfterSnapshot({ config, store: fileStore });
  const first = await backup(source, fileStore);
  await hook(first, log);
  assert.equal(await readDrillRecord(fileStore, first.cluster, first.id), undefined);
  const second = await backup(source, fileStore);
  await hook(second, log);
  assert.equal((await readDrillRecord(fileStore, second.cluster, second.id))?.ok, true);
  assert.deepEqual(await readdir(scratch), []);
});
