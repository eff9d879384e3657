import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { keyIdOf, MAGIC } from '../../worker/crypto/format.js';
import { runCli, runCliOk } from '../support/cli.js';
import { fillEtcd, startEtcd, type EtcdServer } from '../support/etcd.js';
import { tempDir } from '../support/tmp.js';

let etcd: EtcdServer;
let work: { path: string; remove: () => Promise<void> };
let common: string[];
const oldKey = randomBytes(32);
const newKey = randomBytes(32);
/** As a Kubernetes Secret volume mounts them: a directory with one file per data key, base64 text inside. */
const secretDir = () => join(work.path, 'secret');

before(async () => {
  etcd = await startEtcd();
  work = await tempDir('enc-cli');
  await fillEtcd(etcd.client, 200, 64);
  common = ['--endpoints', etcd.endpoint, '--store', `file://${join(work.path, 'store')}`, '--cluster', 'enc-cli'];
  await mkdir(secretDir());
  await writeFile(join(secretDir(), 'old.key'), `${oldKey.toString('base64')}\n`);
  await writeFile(join(secretDir(), 'new.key'), `${newKey.toString('base64')}\n`);
});

after(async () => {
  await etcd?.stop();
  await work?.remove();
});

test('cli: snapshot encrypts with --encryption-key-file (or its env var); verify and restore decrypt after a rotation', async () => {
  const oldFile = join(secretDir(), 'old.key');
  const newFile = join(secretDir(), 'new.key');
  const snap = await runCliOk(['snapshot', ...common, '--json'], {
    env: { ETCD_AUTOBACKUP_ENCRYPTION_KEY_FILE: oldFile },
  });
  const manifest = JSON.parse(snap.stdout) as { id: string; key: string; encryption?: { keyId: string } };
  assert.equal(manifest.encryption?.keyId, keyIdOf(oldKey));
  const stored = await readFile(join(work.path, 'store', manifest.key));
  assert.deepEqual(stored.subarray(0, MAGIC.length), MAGIC);

  // Rotated: new snapshots use the new key, the old one stays for reading.
  const rotated = ['--encryption-key-file', newFile, '--decryption-key-files', oldFile];
  const verified = await runCliOk(['verify', manifest.id, ...common, ...rotated]);
  assert.match(
    verified.stdout,
    new RegExp(`snapshot ${manifest.id}: OK[\\s\\S]*encrypted with key ${keyIdOf(oldKey)}`),
  );
  const dataDir = join(work.path, 'restored');
  await runCliOk(['restore', manifest.id, ...common, ...rotated, '--data-dir', dataDir]);
  assert.deepEqual(await readdir(dataDir), ['member']);

  // The old key dropped: a clear configuration error (exit 2) naming both ids, nothing restored, no key bytes shown.
  const parent = join(work.path, 'refused');
  await mkdir(parent);
  const r = await runCli([
    'restore',
    manifest.id,
    ...common,
    '--encryption-key-file',
    newFile,
    '--data-dir',
    join(parent, 'etcd'),
  ]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(`encrypted with key id ${keyIdOf(oldKey)} and the configured keys are ${keyIdOf(newKey)}`),
  );
  for (const key of [oldKey, newKey])
    assert.ok(!r.stderr.includes(key.toString('base64')) && !r.stderr.includes(key.toString('hex')));
  assert.deepEqual(await readdir(parent), []);

  // Pointing at the Secret's directory instead of the file inside it is explained.
  const dirErr = await runCli(['snapshot', ...common, '--encryption-key-file', secretDir()]);
  assert.equal(dirErr.code, 2);
  assert.match(
    dirErr.stderr,
    /encryption\.keyFile \(flag --encryption-key-file.*\): key file \S+secret is a directory; point at the file inside it/,
  );
});

test('the worker refuses to start with a malformed key file, naming the field and never the key', async () => {
  const bad = join(work.path, 'short.key');
  const secret = 'not-a-real-key-but-secret';
  await writeFile(bad, secret);
  // No Redis is running at this URL: the key check comes first, so the worker exits instead of waiting for it.
  const r = await runCli(
    [
      'worker',
      ...common,
      '--encryption-key-file',
      bad,
      '--redis-url',
      'redis://127.0.0.1:1',
      '--listen',
      '127.0.0.1:0',
    ],
    { timeoutMs: 30_000 },
  );
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /encryption\.keyFile/);
  assert.ok(!r.stderr.includes(secret) && !r.stdout.includes(secret), 'the key file content is never printed');
});
