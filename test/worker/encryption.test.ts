import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { loadConfig, type Config } from '../../core/config/index.js';
import { ConfigError, IntegrityError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { takeBackup } from '../../worker/backup.js';
import { UnknownKeyError } from '../../worker/crypto/decrypt.js';
import { ENCRYPT_TRANSFORM, FRAME_HEADER_BYTES, HEADER_BYTES, MAGIC, TAG_BYTES } from '../../worker/crypto/format.js';
import { KeyRing, loadKeyRing, MasterKey } from '../../worker/crypto/keys.js';
import { manifestKey, type Manifest } from '../../worker/manifest.js';
import { restoreSnapshot } from '../../worker/restore.js';
import { openStore } from '../../worker/stores/open.js';
import type { Store } from '../../worker/stores/store.js';
import { verifySnapshot } from '../../worker/verify.js';
import { fillEtcd, startEtcd, type EtcdServer } from '../support/etcd.js';
import { makeApiKey, type TestApiKey } from '../support/oci-keys.js';
import { startOciServer, type OciServer } from '../support/oci-server.js';
import { startS3rver, S3RVER_CREDENTIALS, type S3rverServer } from '../support/s3rver.js';
import { readAll } from '../support/store-helpers.js';
import { tempDir } from '../support/tmp.js';

const log = createLogger({ level: 'warn' });
const MARKER = 'plaintext-marker-that-must-not-be-stored';

let etcd: EtcdServer;
let s3: S3rverServer;
let oci: OciServer;
let ociKey: TestApiKey;
const OCI_NAMESPACE = 'enctestns';
let work: { path: string; remove: () => Promise<void> };
const keyBytes = { a: randomBytes(32), b: randomBytes(32) };
const keyFiles = { a: '', b: '' };

before(async () => {
  etcd = await startEtcd();
  work = await tempDir('encryption');
  s3 = await startS3rver({ buckets: ['enc-s3', 'enc-ncp'] });
  ociKey = await makeApiKey(work.path);
  oci = await startOciServer({ namespace: OCI_NAMESPACE, buckets: ['enc-oci'], keys: [ociKey] });
  // ~1 MiB of database: many 64 KiB chunks when stored uncompressed.
  await fillEtcd(etcd.client, 300, 3000);
  await etcd.client.put('/registry/secrets/default/marker').value(MARKER);
  keyFiles.a = join(work.path, 'key-a');
  keyFiles.b = join(work.path, 'key-b');
  await writeFile(keyFiles.a, `${keyBytes.a.toString('base64')}\n`);
  await writeFile(keyFiles.b, keyBytes.b);
});

after(async () => {
  await oci?.stop();
  await s3?.stop();
  await etcd?.stop();
  await work?.remove();
});

const s3Flags = () => ({
  's3-endpoint': s3.endpoint,
  's3-access-key-id': S3RVER_CREDENTIALS.accessKeyId,
  's3-secret-access-key': S3RVER_CREDENTIALS.secretAccessKey,
});

/** Every provider the encrypted stream must survive, as an operator would configure it. */
const PROVIDERS: Record<string, () => Record<string, string | boolean>> = {
  file: () => ({ store: `file://${join(work.path, 'store')}` }),
  s3: () => ({ store: 's3://enc-s3/backups', ...s3Flags(), 's3-region': 'us-east-1', 's3-force-path-style': true }),
  ncp: () => ({ store: 'ncp://enc-ncp/backups?region=kr', ...s3Flags() }),
  oci: () => ({
    store: `oci://${OCI_NAMESPACE}/enc-oci/backups`,
    'oci-endpoint': oci.endpoint,
    'oci-region': 'us-ashburn-1',
    'oci-tenancy': ociKey.tenancy,
    'oci-user': ociKey.user,
    'oci-fingerprint': ociKey.fingerprint,
    'oci-private-key-file': ociKey.keyFile,
  }),
};

function configFor(provider: string, flags: Record<string, string | boolean> = {}): Config {
  const store = PROVIDERS[provider]?.();
  if (!store) throw new Error(`no provider ${provider}`);
  return loadConfig({ env: {}, flags: { endpoints: etcd.endpoint, cluster: `enc-${provider}`, ...store, ...flags } });
}

async function dirEntries(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

type ErrorClass = typeof IntegrityError | typeof ConfigError;

function failsWith(kind: ErrorClass, expected: RegExp, label: string): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof kind, `${label}: ${String(err)}`);
    assert.match(err.message, expected, label);
    return true;
  };
}

/** Restores into a fresh parent and checks that the failure left nothing behind. */
async function assertRestoresNothing(
  store: Store,
  manifest: Manifest,
  keys: KeyRing,
  expected: RegExp,
  label: string,
  kind: ErrorClass = IntegrityError,
): Promise<void> {
  const parent = join(work.path, `restore-${randomBytes(3).toString('hex')}`);
  await mkdir(parent);
  await assert.rejects(
    restoreSnapshot({ store, manifest, keys, dataDir: join(parent, 'etcd'), etcdctl: 'etcdctl' }),
    failsWith(kind, expected, `restore: ${label}`),
  );
  assert.deepEqual(await dirEntries(parent), [], `restore of ${label} left something behind`);
}

async function assertVerifyFails(
  store: Store,
  manifest: Manifest,
  keys: KeyRing,
  expected: RegExp,
  label: string,
  kind: ErrorClass = IntegrityError,
): Promise<void> {
  const tmp = join(work.path, `verify-${randomBytes(3).toString('hex')}`);
  await mkdir(tmp);
  await assert.rejects(
    verifySnapshot({ store, manifest, keys, etcdctl: 'etcdctl', tempDir: tmp }),
    failsWith(kind, expected, `verify: ${label}`),
  );
  assert.deepEqual(await dirEntries(tmp), [], `verify of ${label} left its temporary copy`);
}

/** Replaces a stored object (and its manifest's size, as an attacker with bucket access could). */
async function replaceObject(store: Store, manifest: Manifest, bytes: Buffer): Promise<Manifest> {
  await store.put(manifest.key, Readable.from([bytes]));
  const changed = { ...manifest, storedSize: bytes.length };
  await store.put(manifestKey(manifest.cluster, manifest.id), Readable.from([JSON.stringify(changed)]));
  return changed;
}

/** [start, end) of each chunk frame of an encrypted object. */
function frames(sealed: Buffer): [number, number][] {
  const out: [number, number][] = [];
  for (let at = HEADER_BYTES; at < sealed.length;) {
    const end = at + FRAME_HEADER_BYTES + sealed.readUInt32BE(at + 1) + TAG_BYTES;
    out.push([at, end]);
    at = end;
  }
  return out;
}

for (const provider of Object.keys(PROVIDERS)) {
  test(`${provider}: an encrypted snapshot round-trips through verify and restore; tampering fails both and restores nothing`, async () => {
    const config = configFor(provider, { 'encryption-key-file': keyFiles.a, compression: 'none' });
    const store = await openStore(config);
    try {
      const keys = await loadKeyRing(config.encryption);
      const keyA = new MasterKey(keyBytes.a);
      const manifest = await takeBackup({ config, store, log, cause: { source: 'manual' } });

      assert.deepEqual(manifest.transforms, ['verify-sha256', ENCRYPT_TRANSFORM]);
      assert.equal(manifest.encryption?.keyId, keyA.id);
      assert.equal(manifest.encryption?.format, 'etcd-autobackup-enc/1');
      const manifestText = (
        await readAll((await store.get(manifestKey(manifest.cluster, manifest.id))).body)
      ).toString();
      for (const form of [
        keyBytes.a.toString('base64'),
        keyBytes.a.toString('hex'),
        keyBytes.a.toString('base64url'),
      ]) {
        assert.ok(!manifestText.includes(form), 'the manifest holds the key');
      }
      const sealed = await readAll((await store.get(manifest.key)).body);
      assert.equal(sealed.length, manifest.storedSize);
      assert.deepEqual(sealed.subarray(0, MAGIC.length), MAGIC);
      assert.equal(sealed.indexOf(MARKER), -1, 'plaintext in the stored object');
      assert.ok(frames(sealed).length > 8, `only ${frames(sealed).length} chunks`);

      const report = await verifySnapshot({ store, manifest, keys, etcdctl: 'etcdctl' });
      assert.equal(report.sha256, manifest.sha256);
      assert.equal(report.status.revision, manifest.etcd.revision);
      const dataDir = join(work.path, `restored-${provider}`);
      const restored = await restoreSnapshot({ store, manifest, keys, dataDir, etcdctl: 'etcdctl' });
      assert.equal(restored.sha256, manifest.sha256);
      assert.deepEqual(await readdir(dataDir), ['member']);

      // Without the key nothing is downloaded and the error says which key is missing.
      const noKey = new RegExp(
        `encrypted with key id ${keyA.id} and no key is configured; give that key with --encryption-key-file`,
      );
      await assertVerifyFails(store, manifest, KeyRing.empty, noKey, 'no key', ConfigError);
      await assertRestoresNothing(store, manifest, KeyRing.empty, noKey, 'no key', ConfigError);

      const [, second, third] = frames(sealed);
      const last = frames(sealed).at(-1) as [number, number];
      const flipped = Buffer.from(sealed);
      const at = (second as [number, number])[0] + FRAME_HEADER_BYTES + 1000;
      flipped[at] = (flipped[at] as number) ^ 0x01;
      const cases: [string, Buffer, RegExp][] = [
        ['flipped byte', flipped, /cannot be decrypted: chunk 1 \(byte \d+\) fails authentication/],
        [
          'dropped chunk',
          Buffer.concat([
            sealed.subarray(0, (second as [number, number])[0]),
            sealed.subarray((third as [number, number])[0]),
          ]),
          /cannot be decrypted: chunk 1 \(byte \d+\) fails authentication/,
        ],
        [
          'truncated at a chunk boundary',
          sealed.subarray(0, last[0]),
          /cannot be decrypted: it ends after chunk \d+ without the final-chunk marker: the object is truncated/,
        ],
        [
          'truncated mid-chunk',
          sealed.subarray(0, last[0] - 7),
          /cannot be decrypted: it ends inside chunk \d+ .*truncated/,
        ],
      ];
      for (const [label, bytes, expected] of cases) {
        const tampered = await replaceObject(store, manifest, bytes);
        await assertVerifyFails(store, tampered, keys, expected, label);
        await assertRestoresNothing(store, tampered, keys, expected, label);
      }
      // A shorter object under the original manifest is caught even before decryption.
      await store.put(manifest.key, Readable.from([sealed.subarray(0, last[0])]));
      await assertRestoresNothing(
        store,
        manifest,
        keys,
        /is \d+ bytes but its manifest says \d+: the object is truncated or was replaced/,
        'size',
      );
    } finally {
      await store.close();
    }
  });
}

test('key rotation: write with the new key, read old snapshots with the old one; a missing key is named with the configured ids', async () => {
  const store = await openStore(configFor('file'));
  try {
    const keyA = new MasterKey(keyBytes.a);
    const keyB = new MasterKey(keyBytes.b);
    const before = configFor('file', { 'encryption-key-file': keyFiles.a });
    const old = await takeBackup({ config: before, store, log, cause: { source: 'manual' } });
    assert.equal(old.encryption?.keyId, keyA.id);
    assert.ok(
      old.transforms.includes('zstd') && old.transforms.indexOf('zstd') < old.transforms.indexOf(ENCRYPT_TRANSFORM),
      'compression (zstd, the default) before encrypt',
    );

    const rotated = configFor('file', { 'encryption-key-file': keyFiles.b, 'decryption-key-files': keyFiles.a });
    const fresh = await takeBackup({ config: rotated, store, log, cause: { source: 'manual' } });
    assert.equal(fresh.encryption?.keyId, keyB.id);
    const keys = await loadKeyRing(rotated.encryption);
    for (const manifest of [old, fresh])
      assert.equal((await verifySnapshot({ store, manifest, keys, etcdctl: 'etcdctl' })).sha256, manifest.sha256);

    // The old key dropped too early: the old snapshot names it, and the configured ids are listed.
    const onlyB = await loadKeyRing(configFor('file', { 'encryption-key-file': keyFiles.b }).encryption);
    const missing = new RegExp(
      `encrypted with key id ${keyA.id} and the configured keys are ${keyB.id};.*--decryption-key-files`,
    );
    await assert.rejects(verifySnapshot({ store, manifest: old, keys: onlyB, etcdctl: 'etcdctl' }), (err: unknown) => {
      assert.ok(err instanceof UnknownKeyError && err instanceof ConfigError, String(err));
      assert.match(err.message, missing);
      return true;
    });
    await assertRestoresNothing(store, old, onlyB, missing, 'rotated-out key', ConfigError);

    // A snapshot stored in the clear still reads with keys configured, and without.
    const plain = await takeBackup({ config: configFor('file'), store, log, cause: { source: 'manual' } });
    assert.equal(plain.encryption, undefined);
    assert.equal((await verifySnapshot({ store, manifest: plain, keys, etcdctl: 'etcdctl' })).sha256, plain.sha256);
    assert.equal((await verifySnapshot({ store, manifest: plain, etcdctl: 'etcdctl' })).sha256, plain.sha256);
  } finally {
    await store.close();
  }
});

test('a manifest that lists encryption without describing it, or an unknown format, is refused before any download', async () => {
  const config = configFor('file', { 'encryption-key-file': keyFiles.a });
  const store = await openStore(config);
  try {
    const keys = await loadKeyRing(config.encryption);
    const manifest = await takeBackup({ config, store, log, cause: { source: 'manual' } });
    const { encryption: _e, ...undescribed } = manifest;
    await assert.rejects(
      verifySnapshot({ store, manifest: undescribed, keys, etcdctl: 'etcdctl' }),
      /inconsistent manifest/,
    );
    const unlisted = { ...manifest, transforms: ['verify-sha256', 'gzip'] };
    await assert.rejects(
      verifySnapshot({ store, manifest: unlisted, keys, etcdctl: 'etcdctl' }),
      /inconsistent manifest/,
    );
    const future = { ...manifest, encryption: { ...manifest.encryption!, format: 'etcd-autobackup-enc/9' } };
    await assert.rejects(
      verifySnapshot({ store, manifest: future, keys, etcdctl: 'etcdctl' }),
      /encrypted in format etcd-autobackup-enc\/9, which this version cannot read back/,
    );
  } finally {
    await store.close();
  }
});

test('an unreadable key file fails the snapshot as a ConfigError naming the setting, and writes nothing', async () => {
  const config = configFor('file', { 'encryption-key-file': join(work.path, 'no-such-key') });
  const store = await openStore(config);
  try {
    const listed = await store.list('enc-file/');
    await assert.rejects(takeBackup({ config, store, log, cause: { source: 'manual' } }), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(
        err.message,
        /encryption\.keyFile \(flag --encryption-key-file, env ETCD_AUTOBACKUP_ENCRYPTION_KEY_FILE\): key file \S+no-such-key does not exist/,
      );
      return true;
    });
    assert.deepEqual(await store.list('enc-file/'), listed, 'nothing was written');
  } finally {
    await store.close();
  }
});
