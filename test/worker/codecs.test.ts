import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { loadConfig } from '../../core/config/index.js';
import { IntegrityError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { takeBackup } from '../../worker/backup.js';
import { CODECS, gzipCompressor, IGZIP_MAX_LEVEL, type CodecName } from '../../worker/codecs.js';
import { manifestKey, objectKey, type Manifest } from '../../worker/manifest.js';
import { ParallelGzip } from '../../worker/parallel-gzip.js';
import { restoreSnapshot } from '../../worker/restore.js';
import { parseOwnName } from '../../worker/retention.js';
import { FileStore } from '../../worker/stores/file.js';
import { openS3Store } from '../../worker/stores/s3.js';
import type { Store } from '../../worker/stores/store.js';
import { verifySnapshot } from '../../worker/verify.js';
import { fillEtcd, startEtcd, type EtcdServer } from '../support/etcd.js';
import { freePort } from '../support/ports.js';
import { startS3rver, type S3rverServer } from '../support/s3rver.js';
import { readAll, s3rverConfig } from '../support/store-helpers.js';
import { tempDir } from '../support/tmp.js';

let etcd: EtcdServer;
let s3: S3rverServer;
let work: { path: string; remove: () => Promise<void> };
let file: FileStore;
let bucket: Store;
let revision: number;
const NAMES: CodecName[] = ['none', 'gzip', 'zstd'];

before(async () => {
  etcd = await startEtcd();
  s3 = await startS3rver({ buckets: ['backups'] });
  work = await tempDir('codecs');
  file = new FileStore(join(work.path, 'store'));
  bucket = openS3Store('s3://backups/codecs', s3rverConfig(s3.endpoint));
  // Repetitive values, like Kubernetes objects: compression has something to find.
  revision = await fillEtcd(etcd.client, 400, 2048);
});

after(async () => {
  await etcd?.stop();
  await s3?.stop();
  await work?.remove();
});

async function backup(store: Store, compression: CodecName, level?: number): Promise<Manifest> {
  const flags: Record<string, string> = { endpoints: etcd.endpoint, compression };
  if (level !== undefined) flags['compression-level'] = String(level);
  const config = loadConfig({ env: {}, flags });
  return takeBackup({ config, store, log: createLogger({ level: 'warn' }), cause: { source: 'manual' } });
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

test('zstd is the default for a new install, at level 3', () => {
  const config = loadConfig({ env: {}, flags: {} });
  assert.equal(config.snapshot.compression, 'zstd');
  assert.equal(config.snapshot.compressionLevel, undefined);
  assert.equal(CODECS.zstd.levels.default, 3);
  assert.throws(
    () => loadConfig({ env: {}, flags: { compression: 'gzip', 'compression-level': '12' } }),
    /gzip levels are 1-9/,
  );
  assert.equal(loadConfig({ env: {}, flags: { 'compression-level': '19' } }).snapshot.compressionLevel, 19);
  assert.equal(CODECS.gzip.levels.default, 3);
});

test("gzip levels 1-3 store ISA-L igzip's own bytes; levels 4-9 zlib's, in 1 MiB members", async () => {
  for (const level of [undefined, 1, 6, 9]) {
    const manifest = await backup(file, 'gzip', level);
    const stored = await readFile(join(work.path, 'store', manifest.key));
    const snapshot = gunzipSync(stored);
    assert.equal(sha256(snapshot.subarray(0, manifest.dbSize)), manifest.sha256);
    const used = level ?? CODECS.gzip.levels.default;
    let expected: Buffer;
    if (used <= IGZIP_MAX_LEVEL) {
      expected = execFileSync('igzip', ['-q', '-c', '-n', `-${used}`], { input: snapshot, maxBuffer: 64 << 20 });
    } else {
      const blocks: Buffer[] = [];
      for (let at = 0; at < snapshot.length; at += 1024 * 1024)
        blocks.push(gzipSync(snapshot.subarray(at, at + 1024 * 1024), { level: used, memLevel: 9 }));
      expected = Buffer.concat(blocks);
      assert.ok(blocks.length > 1, 'the test snapshot spans several members');
    }
    assert.ok(stored.equals(expected), `level ${level ?? 'default'}: stored bytes are the expected compressor's`);
  }
});

test('gzip without igzip: levels 1-3 fail naming the Debian package, level 4 and up need no binary', async () => {
  const missing = join(work.path, 'no-such-igzip');
  await assert.rejects(readAll(Readable.from([Buffer.from('etcd')]).pipe(gzipCompressor(3, missing))), (err: Error) => {
    assert.match(err.message, /cannot run .*no-such-igzip: not found; install it \(Debian: apt-get install isal\)/);
    return true;
  });
  const out = await readAll(Readable.from([Buffer.from('etcd')]).pipe(gzipCompressor(4, missing)));
  assert.equal(gunzipSync(out).toString(), 'etcd');
  const empty = await readAll(Readable.from([]).pipe(gzipCompressor(2)));
  assert.equal(gunzipSync(empty).length, 0);
});

for (const where of ['file', 's3'] as const) {
  test(`round trip through ${where}: none, gzip and zstd back up, verify and restore into an etcd that boots`, async () => {
    const store = where === 'file' ? file : bucket;
    const sizes: Partial<Record<CodecName, number>> = {};
    for (const name of NAMES) {
      const manifest = await backup(store, name);
      const codec = CODECS[name];
      assert.equal(manifest.compression, name);
      assert.ok(manifest.key.endsWith(`.db${codec.extension}`), manifest.key);
      assert.deepEqual(manifest.transforms, ['verify-sha256', ...(codec.transform ? [codec.transform] : [])]);
      sizes[name] = manifest.storedSize;

      const dataDir = join(work.path, `restored-${where}-${name}`, 'etcd');
      const peer = `http://127.0.0.1:${await freePort()}`;
      const report = await restoreSnapshot({
        store,
        manifest,
        dataDir,
        etcdctl: 'etcdctl',
        member: { name: 'rt', initialCluster: `rt=${peer}`, initialAdvertisePeerUrls: peer },
      });
      assert.equal(report.sha256, manifest.sha256);
      const restored = await startEtcd({ dataDir, name: 'rt' });
      try {
        const got = await restored.client.getAll().prefix('/registry/test/').count();
        assert.equal(got, 400);
        const res = await restored.client.get('/registry/test/0').exec();
        assert.ok(Number(res.header.revision) >= revision);
      } finally {
        await restored.stop();
      }
    }
    assert.ok((sizes.zstd as number) < (sizes.none as number), `zstd ${sizes.zstd} < none ${sizes.none}`);
    assert.ok((sizes.gzip as number) < (sizes.none as number), `gzip ${sizes.gzip} < none ${sizes.none}`);
  });
}

test("interop: our .zst decompresses with Debian's zstd -d and our .gz with gunzip", async () => {
  for (const [name, command] of [
    ['zstd', ['zstd', '-d', '-c']],
    ['gzip', ['gunzip', '-c']],
  ] as const) {
    const manifest = await backup(file, name);
    const path = join(work.path, 'store', manifest.key);
    const out = execFileSync(command[0], [...command.slice(1), path], { maxBuffer: 256 * 1024 * 1024 });
    assert.equal(out.length, manifest.snapshotSize, `${name}: snapshot bytes`);
    assert.equal(sha256(out.subarray(0, manifest.dbSize)), manifest.sha256, `${name}: database hash`);
  }
});

test('a gzip object with an old manifest (single gzip member, written before codecs.ts) still verifies', async () => {
  const plain = await backup(file, 'none');
  const bytes = await readFile(join(work.path, 'store', plain.key));
  const id = `${plain.id.slice(0, -4)}0ld0`;
  const key = objectKey(plain.cluster, id, 'gzip');
  const gz = gzipSync(bytes, { level: 6 });
  await file.put(key, Readable.from([gz]));
  const old: Manifest = {
    ...plain,
    id,
    key,
    storedSize: gz.length,
    compression: 'gzip',
    transforms: ['verify-sha256', 'gzip'],
    tool: { name: 'etcd-autobackup', version: '0.0.9' },
  };
  await file.put(manifestKey(plain.cluster, id), Readable.from([JSON.stringify(old)]));
  assert.ok(key.endsWith('.db.gz'));
  const report = await verifySnapshot({ store: file, manifest: old, etcdctl: 'etcdctl' });
  assert.equal(report.sha256, plain.sha256);
});

test('a corrupted .zst fails verify with an IntegrityError naming the object', async () => {
  const manifest = await backup(file, 'zstd');
  const path = join(work.path, 'store', manifest.key);
  const bytes = await readFile(path);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] as number) ^ 0xff;
  await writeFile(path, bytes);
  await assert.rejects(verifySnapshot({ store: file, manifest, etcdctl: 'etcdctl' }), (err: unknown) => {
    assert.ok(err instanceof IntegrityError, String(err));
    assert.ok(err.message.includes(manifest.key), err.message);
    assert.match(err.message, /is corrupt: (it does not decompress as zstd \(zstd -d failed|SHA-256 mismatch)/);
    return true;
  });
});

test('retention recognises .db.zst and an age-encrypted .db.zst.age as our objects', () => {
  const id = '20261124T032800Z-r12345-a1b2';
  for (const suffix of ['.db', '.db.gz', '.db.zst', '.db.gz.age', '.db.zst.age', '.db.age']) {
    assert.deepEqual(parseOwnName(`${id}${suffix}`), { id, kind: 'object' }, suffix);
  }
  for (const other of ['.db.zstd', '.db.zst.bak', '.zst', '.db.age.zst']) {
    assert.equal(parseOwnName(`${id}${other}`), undefined, other);
  }
});

test('ParallelGzip: concatenated members read back as the input, in order, also when empty', async () => {
  const input = Buffer.concat(
    Array.from({ length: 300 }, (_, i) =>
      Buffer.from(`{"kind":"ConfigMap","name":"cm-${i}","data":"${'x'.repeat(i)}"}\n`),
    ),
  );
  const chunks = Array.from({ length: Math.ceil(input.length / 1000) }, (_, i) =>
    input.subarray(i * 1000, (i + 1) * 1000),
  );
  const out = await readAll(Readable.from(chunks).pipe(new ParallelGzip({ level: 6, blockSize: 4096, parallel: 3 })));
  assert.ok(out.length < input.length);
  assert.deepEqual(gunzipSync(out), input);
  const empty = await readAll(Readable.from([]).pipe(new ParallelGzip({ level: 6 })));
  assert.equal(gunzipSync(empty).length, 0);
});
