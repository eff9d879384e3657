import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../core/config/index.js';
import { IntegrityError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import type { Progress } from '../../core/progress.js';
import { takeBackup } from '../../worker/backup.js';
import type { Manifest } from '../../worker/manifest.js';
import { FileStore } from '../../worker/stores/file.js';
import { snapshotFileProblem, verifySnapshot, type HashedSnapshot } from '../../worker/verify.js';
import { fillEtcd, startEtcd, type EtcdServer } from '../support/etcd.js';
import { tempDir } from '../support/tmp.js';

let etcd: EtcdServer;
let work: { path: string; remove: () => Promise<void> };
let store: FileStore;
let revision: number;

before(async () => {
  etcd = await startEtcd();
  work = await tempDir('verify');
  store = new FileStore(join(work.path, 'store'));
  revision = await fillEtcd(etcd.client, 500, 64);
});

after(async () => {
  await etcd?.stop();
  await work?.remove();
});

async function backup(compression: 'gzip' | 'none' = 'gzip'): Promise<Manifest> {
  const config = loadConfig({ env: {}, flags: { endpoints: etcd.endpoint, compression } });
  return takeBackup({ config, store, log: createLogger({ level: 'warn' }), cause: { source: 'manual' } });
}

/** A fresh directory for verify's temporary copy, to check it is cleaned up. */
async function scratch(name: string): Promise<string> {
  const dir = join(work.path, name);
  await mkdir(dir);
  return dir;
}

test('verifySnapshot: checks the hash and sizes, reads the database with etcdctl, reports progress, cleans up', async () => {
  for (const compression of ['gzip', 'none'] as const) {
    const manifest = await backup(compression);
    const tmp = await scratch(`ok-${compression}`);
    const progress: Progress[] = [];
    const report = await verifySnapshot({
      store,
      manifest,
      etcdctl: 'etcdctl',
      tempDir: tmp,
      onProgress: (p) => progress.push(p),
    });
    assert.equal(report.sha256, manifest.sha256);
    assert.equal(report.dbSize, manifest.dbSize);
    assert.equal(report.snapshotSize, manifest.dbSize + 32);
    assert.equal(report.status.revision, revision);
    assert.equal(report.status.totalSize, manifest.dbSize);
    assert.ok(report.status.totalKey >= 500, `totalKey ${report.status.totalKey}`);
    assert.deepEqual(progress.at(-1), { ...progress.at(-1), bytes: manifest.storedSize, total: manifest.storedSize });
    assert.deepEqual(await readdir(tmp), []);
  }
});

test('verifySnapshot: a corrupt object is an IntegrityError and the temporary copy is removed', async () => {
  const manifest = await backup('none');
  const file = join(work.path, 'store', manifest.key);
  const bytes = await readFile(file);
  bytes[100] = (bytes[100] as number) ^ 0x01;
  await writeFile(file, bytes);
  const tmp = await scratch('corrupt');
  await assert.rejects(verifySnapshot({ store, manifest, etcdctl: 'etcdctl', tempDir: tmp }), (err: unknown) => {
    assert.ok(err instanceof IntegrityError, String(err));
    assert.match(err.message, /is corrupt: SHA-256 mismatch/);
    return true;
  });
  assert.deepEqual(await readdir(tmp), []);
});

test('verifySnapshot: a database etcdctl cannot open fails even with a matching SHA-256', async () => {
  // The trailer only proves the bytes are the ones etcd sent; etcdctl proves they are a database.
  // A fake etcdctl stands in for a database etcd cannot open, which a real snapshot never is.
  const manifest = await backup();
  const fake = join(work.path, 'etcdctl-broken');
  await writeFile(fake, '#!/bin/sh\necho "Error: invalid database" >&2\nexit 1\n');
  await chmod(fake, 0o755);
  const tmp = await scratch('unreadable');
  await assert.rejects(
    verifySnapshot({ store, manifest, etcdctl: fake, tempDir: tmp }),
    /etcdctl cannot read the snapshot database: .*Error: invalid database/,
  );
  assert.deepEqual(await readdir(tmp), []);
});

test('verifySnapshot: a missing etcdctl and an unknown transform are explained', async () => {
  const manifest = await backup();
  await assert.rejects(
    verifySnapshot({ store, manifest, etcdctl: join(work.path, 'no-such-etcdctl') }),
    /neither "etcdutl" nor "\S+no-such-etcdctl" was found; install etcdutl \(etcd 3\.5\+\) or etcdctl 3\.4, or set --etcdctl/,
  );
  await assert.rejects(
    verifySnapshot({
      store,
      manifest: { ...manifest, transforms: ['verify-sha256', 'gzip', 'age-encrypt'] },
      etcdctl: 'etcdctl',
    }),
    /was written with age-encrypt, which this version cannot read back/,
  );
});

test('snapshotFileProblem: a hashed file against its trailer and manifest, by example', () => {
  const sha = 'ab'.repeat(32);
  const m = { sha256: sha, dbSize: 4096, snapshotSize: 4128 } as Manifest;
  const ok: HashedSnapshot = { sha256: sha, trailer: sha, dbSize: 4096, snapshotSize: 4128 };
  assert.equal(snapshotFileProblem(ok, m), undefined);
  assert.match(
    snapshotFileProblem({ ...ok, snapshotSize: 20, dbSize: 0, trailer: '' }, m) ?? '',
    /too short \(20 bytes\)/,
  );
  assert.match(
    snapshotFileProblem({ ...ok, trailer: 'cd'.repeat(32) }, m) ?? '',
    /^is corrupt: SHA-256 mismatch: the database hashes to (ab)+ but the snapshot trailer says (cd)+$/,
  );
  // Consistent with itself but another database: the manifest says which one it must be.
  const other = 'ef'.repeat(32);
  assert.match(
    snapshotFileProblem({ ...ok, sha256: other, trailer: other }, m) ?? '',
    /does not match its manifest: the database hashes to (ef)+/,
  );
  assert.match(
    snapshotFileProblem({ ...ok, dbSize: 8192, snapshotSize: 8224 }, m) ?? '',
    /8224 snapshot bytes \(8192 database\) but the manifest says 4128 \(4096\)/,
  );
});
