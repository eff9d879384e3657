import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { loadConfig } from '../../core/config/index.js';
import { IntegrityError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { takeBackup } from '../../worker/backup.js';
import { BBOLT_HEAD_BYTES, checkBboltHeader, fnv1a64 } from '../../worker/bbolt-header.js';
import { manifestKey, objectKey, type Manifest } from '../../worker/manifest.js';
import { FileStore } from '../../worker/stores/file.js';
import { verifySnapshot } from '../../worker/verify.js';
import { fillEtcd, startEtcd, type EtcdServer } from '../support/etcd.js';
import { tempDir } from '../support/tmp.js';

let etcd: EtcdServer;
let work: { path: string; remove: () => Promise<void> };
let store: FileStore;
let manifest: Manifest;
/** The database of a real snapshot, without etcd's trailer. */
let db: Buffer;

before(async () => {
  etcd = await startEtcd();
  work = await tempDir('bbolt');
  store = new FileStore(join(work.path, 'store'));
  await fillEtcd(etcd.client, 100, 16);
  const config = loadConfig({ env: {}, flags: { endpoints: etcd.endpoint, compression: 'none' } });
  manifest = await takeBackup({ config, store, log: createLogger({ level: 'warn' }), cause: { source: 'manual' } });
  const raw = await readFile(join(work.path, 'store', manifest.key));
  db = raw.subarray(0, raw.length - 32);
});

after(async () => {
  await etcd?.stop();
  await work?.remove();
});

test('fnv1a64: the published test vectors', () => {
  assert.equal(fnv1a64(Buffer.from('')), 0xcbf29ce484222325n);
  assert.equal(fnv1a64(Buffer.from('a')), 0xaf63dc4c8601ec8cn);
  assert.equal(fnv1a64(Buffer.from('foobar')), 0x85944171f73967e8n);
});

test('checkBboltHeader: a real etcd snapshot passes', () => {
  const result = checkBboltHeader(db.subarray(0, BBOLT_HEAD_BYTES), db.length);
  assert.ok(
    result.ok,
    JSON.stringify(result, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
  );
  assert.equal(result.pageSize, 4096);
  assert.ok(result.pages * 4096n <= BigInt(db.length));
});

test('checkBboltHeader: a flipped byte in either meta page, a truncated file, random bytes all fail', () => {
  const pageSize = 4096;
  for (const [at, expected] of [
    [16 + 20, /meta page 0 checksum mismatch/],
    [pageSize + 16 + 44, /meta page 1 checksum mismatch/],
    [16 + 1, /meta page 0 has magic 0x.*not a bbolt database/],
    [pageSize + 16 + 5, /meta page 1 has bbolt version/],
  ] as const) {
    const copy = Buffer.from(db.subarray(0, BBOLT_HEAD_BYTES));
    copy[at] = (copy[at] as number) ^ 0x01;
    const result = checkBboltHeader(copy, db.length);
    assert.equal(result.ok, false, `flipped byte ${at}`);
    assert.match(!result.ok ? result.problem : '', expected);
  }
  const truncated = checkBboltHeader(db.subarray(0, BBOLT_HEAD_BYTES), db.length - pageSize);
  assert.match(!truncated.ok ? truncated.problem : 'passed', /the database is truncated/);
  const cut = checkBboltHeader(db.subarray(0, 5000), 5000);
  assert.match(!cut.ok ? cut.problem : 'passed', /meta page 1 is cut short|truncated/);
  const random = checkBboltHeader(randomBytes(BBOLT_HEAD_BYTES), BBOLT_HEAD_BYTES);
  assert.match(!random.ok ? random.problem : 'passed', /not a meta page|not a bbolt database/);
  assert.match(
    (() => {
      const r = checkBboltHeader(Buffer.alloc(100), 100);
      return r.ok ? 'passed' : r.problem;
    })(),
    /too small/,
  );
});

test('verifySnapshot: a non-bbolt file with a valid SHA-256 trailer is refused with no etcd tool installed', async () => {
  // The trailer proves only that the bytes arrived as sent; the header check proves they are a database.
  const garbage = randomBytes(64 * 1024);
  const sha = createHash('sha256').update(garbage).digest();
  const id = '20261201T000000Z-r1-beef';
  const key = objectKey(manifest.cluster, id, 'none');
  const body = Buffer.concat([garbage, sha]);
  await store.put(key, Readable.from([body]), {});
  const fake: Manifest = {
    ...manifest,
    id,
    key,
    sha256: sha.toString('hex'),
    dbSize: garbage.length,
    snapshotSize: body.length,
    storedSize: body.length,
  };
  await store.put(manifestKey(manifest.cluster, id), Readable.from([JSON.stringify(fake)]), {});
  const saved = process.env.PATH;
  const empty = join(work.path, 'no-tools');
  await mkdir(empty);
  process.env.PATH = empty;
  try {
    await assert.rejects(verifySnapshot({ store, manifest: fake, etcdctl: 'etcdctl' }), (err: unknown) => {
      assert.ok(err instanceof IntegrityError, String(err));
      assert.match(err.message, /is not a usable etcd database: .*(not a meta page|not a bbolt database)/);
      return true;
    });
  } finally {
    process.env.PATH = saved;
  }
});
