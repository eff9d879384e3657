import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { loadConfig, type Config } from '../../core/config/index.js';
import { ConfigError, IntegrityError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { takeBackup } from '../../worker/backup.js';
import { headerEnd, loadIdentities, type AgeIdentities } from '../../worker/crypto/age.js';
import { checkStoredBytes, MissingIdentityError } from '../../worker/crypto/age-stored.js';
import { manifestKey, parseManifest, type Manifest } from '../../worker/manifest.js';
import { restoreSnapshot } from '../../worker/restore.js';
import { parseOwnName } from '../../worker/retention.js';
import { openStore } from '../../worker/stores/open.js';
import type { Store } from '../../worker/stores/store.js';
import { snapshotStatus, verifySnapshot } from '../../worker/verify.js';
import { findEtcdTools } from '../../worker/etcd-tools.js';
import { runCli, runCliOk } from '../support/cli.js';
import { fillEtcd, startEtcd, type EtcdServer } from '../support/etcd.js';
import { readAll } from '../support/store-helpers.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const log = createLogger({ level: 'warn' });
const MARKER = 'plaintext-marker-that-must-not-be-stored';

let etcd: EtcdServer;
let work: { path: string; remove: () => Promise<void> };
const key = { a: '', b: '' };
const recipient = { a: '', b: '' };
let idA: AgeIdentities;
let idB: AgeIdentities;

before(async () => {
  etcd = await startEtcd();
  work = await tempDir('age');
  await fillEtcd(etcd.client, 300, 3000);
  await etcd.client.put('/registry/secrets/default/marker').value(MARKER);
  for (const k of ['a', 'b'] as const) {
    key[k] = join(work.path, `key-${k}.txt`);
    await run('age-keygen', ['-o', key[k]]);
    recipient[k] = (await run('age-keygen', ['-y', key[k]])).stdout.trim();
  }
  idA = (await loadIdentities([key.a])) as AgeIdentities;
  idB = (await loadIdentities([key.b])) as AgeIdentities;
});

after(async () => {
  await etcd?.stop();
  await work?.remove();
});

const storeDir = () => join(work.path, 'store');

function configFor(flags: Record<string, string | boolean> = {}): Config {
  return loadConfig({
    env: {},
    flags: { endpoints: etcd.endpoint, cluster: 'age', store: `file://${storeDir()}`, ...flags },
  });
}

async function sh(cmd: string): Promise<string> {
  return (await run('bash', ['-c', cmd], { maxBuffer: 64 << 20 })).stdout;
}

async function entries(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

async function replaceObject(store: Store, manifest: Manifest, bytes: Buffer): Promise<Manifest> {
  await store.put(manifest.key, Readable.from([bytes]));
  // As an attacker with bucket access could: the manifest's size and hash follow the new bytes.
  const changed: Manifest = {
    ...manifest,
    storedSize: bytes.length,
    storedSha256: createHash('sha256').update(bytes).digest('hex'),
  };
  await store.put(manifestKey(manifest.cluster, manifest.id), Readable.from([JSON.stringify(changed)]));
  return changed;
}

function failsNaming(manifest: Manifest, expected: RegExp, kind: typeof IntegrityError | typeof ConfigError) {
  return (err: unknown): true => {
    assert.ok(err instanceof kind, String(err));
    assert.match(err.message, new RegExp(`snapshot ${manifest.id} \\(${manifest.key.replace(/\./g, '\\.')}`));
    assert.match(err.message, expected);
    return true;
  };
}

async function assertBothFail(
  store: Store,
  manifest: Manifest,
  identities: AgeIdentities | undefined,
  expected: RegExp,
  label: string,
  kind: typeof IntegrityError | typeof ConfigError = IntegrityError,
): Promise<void> {
  const tmp = join(work.path, `verify-${randomBytes(3).toString('hex')}`);
  await mkdir(tmp);
  await assert.rejects(
    verifySnapshot({ store, manifest, identities, etcdctl: 'etcdctl', tempDir: tmp }),
    failsNaming(manifest, expected, kind),
    `verify: ${label}`,
  );
  assert.deepEqual(await entries(tmp), [], `verify of ${label} left its copy`);
  const parent = join(work.path, `restore-${randomBytes(3).toString('hex')}`);
  await mkdir(parent);
  await assert.rejects(
    restoreSnapshot({ store, manifest, identities, dataDir: join(parent, 'etcd'), etcdctl: 'etcdctl' }),
    failsNaming(manifest, expected, kind),
    `restore: ${label}`,
  );
  assert.deepEqual(await entries(parent), [], `restore of ${label} left something behind`);
}

test('an age snapshot is a standard age file: age -d | gunzip opens with etcdctl; verify and restore decrypt with the identity', async () => {
  const config = configFor({ 'age-recipients': `${recipient.a},${recipient.b}`, compression: 'gzip' });
  const store = await openStore(config);
  try {
    const manifest = await takeBackup({ config, store, log, cause: { source: 'manual' } });
    assert.match(manifest.key, /\.db\.gz\.age$/);
    assert.deepEqual(parseOwnName(manifest.key.split('/').at(-1) as string), { id: manifest.id, kind: 'object' });
    assert.deepEqual(manifest.transforms, ['verify-sha256', 'gzip', 'age']);
    assert.deepEqual(manifest.age, { format: 'age-encryption.org/v1', recipients: [recipient.a, recipient.b] });
    assert.equal(manifest.encryption, undefined);

    const file = join(storeDir(), manifest.key);
    const sealed = await readFile(file);
    assert.equal(sealed.length, manifest.storedSize);
    assert.equal(createHash('sha256').update(sealed).digest('hex'), manifest.storedSha256);
    assert.ok(sealed.toString('latin1').startsWith('age-encryption.org/v1\n'));
    const manifestText = (await readAll((await store.get(manifestKey(manifest.cluster, manifest.id))).body)).toString();
    assert.ok(!manifestText.includes('AGE-SECRET-KEY'), 'an identity in the manifest');

    // By hand, with the reference tool only.
    const db = join(work.path, 'by-hand.db');
    await sh(`age -d -i ${key.b} < ${file} | gunzip > ${db}`);
    const status = await snapshotStatus(await findEtcdTools({ etcdctl: 'etcdctl' }), db);
    assert.equal(status.revision, manifest.etcd.revision);
    assert.ok((await readFile(db)).includes(MARKER));

    const report = await verifySnapshot({ store, manifest, identities: idA, etcdctl: 'etcdctl' });
    assert.equal(report.sha256, manifest.sha256);
    const dataDir = join(work.path, 'restored-lib');
    await restoreSnapshot({ store, manifest, identities: idB, dataDir, etcdctl: 'etcdctl' });
    assert.deepEqual(await readdir(dataDir), ['member']);

    // Without an identity: the stored bytes are still checked, and a changed byte is caught.
    assert.deepEqual(await checkStoredBytes(store, manifest), {
      storedSize: manifest.storedSize,
      storedSha256: manifest.storedSha256,
    });
    await assertBothFail(
      store,
      manifest,
      undefined,
      /age-encrypted to age1.*--identity FILE/,
      'no identity',
      MissingIdentityError,
    );
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 100] = (flipped[flipped.length - 100] as number) ^ 1;
    await store.put(manifest.key, Readable.from([flipped]));
    await assert.rejects(checkStoredBytes(store, manifest), /stored bytes hash to [0-9a-f]{64} but the manifest says/);
  } finally {
    await store.close();
  }
});

test('uncompressed: .db.age, and age -d gives the database etcdctl opens', async () => {
  const config = configFor({ 'age-recipients': recipient.a, compression: 'none' });
  const store = await openStore(config);
  try {
    const manifest = await takeBackup({ config, store, log, cause: { source: 'manual' } });
    assert.match(manifest.key, /\.db\.age$/);
    assert.deepEqual(manifest.transforms, ['verify-sha256', 'age']);
    const sealed = await readFile(join(storeDir(), manifest.key));
    assert.equal(sealed.indexOf(MARKER), -1, 'plaintext in the stored object');
    const db = join(work.path, 'plain.db');
    await sh(`age -d -i ${key.a} -o ${db} ${join(storeDir(), manifest.key)}`);
    assert.equal(
      (await snapshotStatus(await findEtcdTools({ etcdctl: 'etcdctl' }), db)).revision,
      manifest.etcd.revision,
    );
  } finally {
    await store.close();
  }
});

test('bad input: wrong identity, another header, truncated, reordered, appended: verify and restore fail naming the object, nothing restored', async () => {
  const config = configFor({ 'age-recipients': recipient.a, compression: 'none' });
  const store = await openStore(config);
  try {
    const manifest = await takeBackup({ config, store, log, cause: { source: 'manual' } });
    const sealed = await readFile(join(storeDir(), manifest.key));
    const start = headerEnd(sealed) + 16;
    const S = 65536 + 16;
    const count = Math.ceil((sealed.length - start) / S);
    assert.ok(count > 8, `only ${count} chunks`);
    const chunk = (i: number) => sealed.subarray(start + i * S, Math.min(sealed.length, start + (i + 1) * S));
    const chunks = Array.from({ length: count }, (_, i) => chunk(i));

    await assertBothFail(
      store,
      manifest,
      idB,
      /none of the 1 identities in .*key-b\.txt is a recipient/,
      'wrong identity',
    );

    const other = await sh(`printf '' | age -r ${recipient.b} | base64 -w0`);
    const otherFile = Buffer.from(other, 'base64');
    const swapped = Buffer.concat([otherFile.subarray(0, headerEnd(otherFile)), sealed.subarray(headerEnd(sealed))]);
    await assertBothFail(
      store,
      await replaceObject(store, manifest, swapped),
      idA,
      /none of the 1 identities/,
      'other header',
    );

    const cut = sealed.subarray(0, start + 3 * S);
    await assertBothFail(
      store,
      await replaceObject(store, manifest, cut),
      idA,
      /cannot be decrypted: it ends after chunk 2 .*truncated/,
      'cut at a chunk',
    );
    const cutMid = sealed.subarray(0, sealed.length - 10);
    await assertBothFail(
      store,
      await replaceObject(store, manifest, cutMid),
      idA,
      /cannot be decrypted: .*fails authentication/,
      'cut mid-chunk',
    );

    const reordered = Buffer.concat([
      sealed.subarray(0, start),
      chunks[0] as Buffer,
      chunks[2] as Buffer,
      chunks[1] as Buffer,
      ...chunks.slice(3),
    ]);
    await assertBothFail(
      store,
      await replaceObject(store, manifest, reordered),
      idA,
      /chunk 1 .*fails authentication/,
      'reordered',
    );

    const appended = Buffer.concat([sealed, chunks[1] as Buffer]);
    await assertBothFail(
      store,
      await replaceObject(store, manifest, appended),
      idA,
      /cannot be decrypted: chunk \d+ .*(data was appended|fails authentication)/,
      'appended',
    );

    // A size that disagrees with the manifest is refused before any decryption.
    await store.put(manifest.key, Readable.from([cut]));
    await assertBothFail(store, manifest, idA, /is \d+ bytes but its manifest says/, 'size');
  } finally {
    await store.close();
  }
});

test('cli: an object that age -r encrypted restores with --identity, and the booted etcd has the keys; verify without one says what it did not check', async () => {
  const dir = join(work.path, 'cli-store');
  const common = ['--endpoints', etcd.endpoint, '--store', `file://${dir}`, '--cluster', 'agecli'];
  const snap = await runCliOk(['snapshot', ...common, '--compression', 'gzip', '--json']);
  const plain = JSON.parse(snap.stdout) as Manifest;
  assert.match(plain.key, /\.db\.gz$/);

  // Written by the reference tool, named and described as this service would.
  const key2 = `${plain.key}.age`;
  await sh(`age -r ${recipient.a} -o ${join(dir, key2)} ${join(dir, plain.key)}`);
  await rm(join(dir, plain.key));
  const sealed = await readFile(join(dir, key2));
  const manifest: Manifest = {
    ...plain,
    key: key2,
    transforms: [...plain.transforms, 'age'],
    age: { format: 'age-encryption.org/v1', recipients: [recipient.a] },
    storedSize: sealed.length,
    storedSha256: createHash('sha256').update(sealed).digest('hex'),
  };
  const mfile = join(dir, manifestKey('agecli', plain.id));
  await writeFile(mfile, JSON.stringify(manifest));
  parseManifest(await readFile(mfile, 'utf8'), mfile);

  const blind = await runCliOk(['verify', plain.id, ...common]);
  assert.match(blind.stdout, new RegExp(`snapshot ${plain.id}: stored object OK, content NOT checked`));
  assert.match(blind.stdout, /no identity was given; run verify with --identity FILE/);
  const blindJson = JSON.parse((await runCliOk(['verify', plain.id, ...common, '--json'])).stdout) as {
    contentChecked: boolean;
  };
  assert.equal(blindJson.contentChecked, false);

  const verified = await runCliOk(['verify', plain.id, ...common, '--identity', key.a]);
  assert.match(verified.stdout, new RegExp(`snapshot ${plain.id}: OK`));

  // Wrong identity: a failure that names the object; nothing restored; no secret printed.
  const parent = join(work.path, 'cli-refused');
  await mkdir(parent);
  const refused = await runCli([
    'restore',
    plain.id,
    ...common,
    '--identity',
    key.b,
    '--data-dir',
    join(parent, 'etcd'),
  ]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, new RegExp(`${plain.id}.*none of the 1 identities`));
  assert.ok(!refused.stderr.includes('AGE-SECRET-KEY'));
  assert.deepEqual(await entries(parent), []);

  const dataDir = join(work.path, 'cli-restored');
  await runCliOk([
    'restore',
    plain.id,
    ...common,
    '--identity',
    `${key.b},${key.a}`,
    '--data-dir',
    dataDir,
    '--name',
    'agecli',
  ]);
  const restored = await startEtcd({ dataDir, name: 'agecli' });
  try {
    const value = await restored.client.get('/registry/secrets/default/marker').string();
    assert.equal(value, MARKER);
  } finally {
    await restored.stop();
  }
  // gunzip of age -d output is the database, as docs/encryption.md tells operators.
  const out = await sh(`age -d -i ${key.a} ${join(dir, key2)} | base64 -w0`);
  assert.ok(gunzipSync(Buffer.from(out, 'base64')).includes(MARKER));
});

test('drill: an age snapshot drills with --identity (restored, booted, revision and HashKV match); without one the drill fails saying so', async () => {
  const dir = join(work.path, 'drill-store');
  const common = ['--endpoints', etcd.endpoint, '--store', `file://${dir}`, '--cluster', 'agedrill'];
  const snap = await runCliOk(['snapshot', ...common, '--age-recipients', recipient.a, '--json']);
  assert.match((JSON.parse(snap.stdout) as Manifest).key, /\.age$/);

  const drilled = await runCliOk(['drill', 'latest', ...common, '--identity', key.a, '--json']);
  const record = JSON.parse(drilled.stdout) as { ok: boolean; checks: { name: string; ok: boolean }[] };
  assert.equal(record.ok, true);
  for (const name of ['download', 'restore', 'revision', 'hashkv'])
    assert.ok(record.checks.find((c) => c.name === name)?.ok, `${name} passed`);

  const blind = await runCli(['drill', 'latest', ...common, '--json']);
  assert.equal(blind.code, 1);
  const failed = JSON.parse(blind.stdout) as { ok: boolean; failure: string };
  assert.equal(failed.ok, false);
  assert.match(failed.failure, /identity/);
});
