/**
 * The original chart's objects (`<YYYY-MM-DD>/etcd-backup-<YYYY-MM-DDTHH:MM:SS>.db` at the bucket
 * root, plain `etcdctl snapshot save` output, no manifest) in a store that also holds our own
 * snapshots: listed apart, verified and restored by the CLI, and never touched by retention. Once
 * on the file store and once on s3rver, with snapshots made by the real etcdctl.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { parseLegacyKey } from '../../worker/legacy.js';
import { FileStore } from '../../worker/stores/file.js';
import { openS3Store } from '../../worker/stores/s3.js';
import type { Store } from '../../worker/stores/store.js';
import { keepLastOnly, runCli, runCliOk } from '../support/cli.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { freePort } from '../support/ports.js';
import { startS3rver, S3RVER_CREDENTIALS, type S3rverServer } from '../support/s3rver.js';
import { s3rverConfig } from '../support/store-helpers.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const BUCKET = 'jujy-etcd-backup-ap-northeast-2';
// Written as the original did: `date -u +"%Y-%m-%dT%H:%M:%S"` in a `date -u +"%Y-%m-%d"` folder.
const OLDER = '2024-05-01/etcd-backup-2024-05-01T03:04:05.db';
const NEWER = '2024-05-02/etcd-backup-2024-05-01T23:59:59.db'; // the folder is the next day: two `date` calls
const NO_TRAILER = '2024-04-30/etcd-backup-2024-04-30T10:00:00.db';
const CORRUPT = '2024-04-29/etcd-backup-2024-04-29T10:00:00.db';
const NOT_BBOLT = '2024-04-28/etcd-backup-2024-04-28T10:00:00.db';

let etcd: EtcdServer;
let work: { path: string; remove: () => Promise<void> };
let s3: S3rverServer;
/** `etcdctl snapshot save` output: the database and etcd's 32-byte SHA-256 trailer. */
let saved: Buffer;
let savedRevision: number;

before(async () => {
  etcd = await startEtcd();
  work = await tempDir('cli-legacy');
  s3 = await startS3rver({ buckets: [BUCKET] });
  for (let i = 0; i < 200; i++) await etcd.client.put(`/registry/configmaps/default/cm-${i}`).value(`{"n":${i}}`);
  const file = join(work.path, 'etcd-backup.db');
  await run('etcdctl', ['--endpoints', etcd.endpoint, 'snapshot', 'save', file], {
    env: { ...process.env, ETCDCTL_API: '3' },
  });
  saved = await readFile(file);
  assert.equal(saved.length % 512, 32, 'etcdctl snapshot save keeps the trailer');
  savedRevision = Number((await etcd.client.get('/registry/configmaps/default/cm-0').exec()).header.revision);
});

after(async () => {
  await etcd?.stop();
  await s3?.stop();
  await work?.remove();
});

/** The original's objects, written straight into the bucket root as its upload did. */
async function writeOriginals(store: Store): Promise<void> {
  const corrupt = Buffer.from(saved);
  corrupt.writeUInt8((corrupt.readUInt8(corrupt.length - 4096) ^ 0xff) & 0xff, corrupt.length - 4096);
  const objects: [string, Buffer][] = [
    [OLDER, saved],
    [NEWER, saved],
    // A database file copied without etcd's trailer (as from member/snap/db).
    [NO_TRAILER, saved.subarray(0, saved.length - 32)],
    [CORRUPT, corrupt],
    [NOT_BBOLT, Buffer.alloc(8192, 7)],
    // Not the original's naming: never listed as legacy.
    ['2024-05-01/notes.txt', Buffer.from('hello')],
    ['2024-13-01/etcd-backup-2024-13-01T00:00:00.db', saved],
  ];
  for (const [key, body] of objects) await store.put(key, Readable.from([body]));
}

interface Case {
  name: string;
  args: () => string[];
  open: () => Store;
}

const CASES: Case[] = [
  {
    name: 'file store',
    args: () => ['--store', `file://${join(work.path, 'bucket')}`],
    open: () => new FileStore(join(work.path, 'bucket')),
  },
  {
    name: 's3rver',
    args: () => [
      '--store',
      `s3://${BUCKET}`,
      '--s3-endpoint',
      s3.endpoint,
      '--s3-region',
      'ap-northeast-2',
      '--s3-force-path-style',
      '--s3-access-key-id',
      S3RVER_CREDENTIALS.accessKeyId,
      '--s3-secret-access-key',
      S3RVER_CREDENTIALS.secretAccessKey,
    ],
    open: () => openS3Store(`s3://${BUCKET}`, s3rverConfig(s3.endpoint, { region: 'ap-northeast-2' })),
  },
];

for (const c of CASES) {
  test(`${c.name}: the original chart's objects are listed apart, verified, restored, and never pruned`, async () => {
    const store = c.open();
    let restored: EtcdServer | undefined;
    try {
      await writeOriginals(store);
      const common = ['--endpoints', etcd.endpoint, '--cluster', 'prod', '--log-level', 'error', ...c.args()];
      // Two of our own snapshots beside them, so that prune has something of its own to delete.
      await runCliOk(['snapshot', ...common]);
      await runCliOk(['snapshot', ...common]);

      const plain = JSON.parse((await runCliOk(['list', ...common, '--json'])).stdout) as unknown[];
      assert.equal(plain.length, 2, 'without --include-legacy only our snapshots are listed');

      const both = JSON.parse((await runCliOk(['list', ...common, '--include-legacy', '--json'])).stdout) as {
        snapshots: { id: string }[];
        legacy: { key: string; createdAt: string; storedSize: number; legacy: boolean }[];
      };
      assert.equal(both.snapshots.length, 2);
      assert.deepEqual(
        both.legacy.map((o) => o.key),
        [NEWER, OLDER, NO_TRAILER, CORRUPT, NOT_BBOLT],
      );
      const newest = both.legacy[0];
      assert.deepEqual(
        { key: newest?.key, createdAt: newest?.createdAt, storedSize: newest?.storedSize, legacy: newest?.legacy },
        { key: NEWER, createdAt: '2024-05-01T23:59:59.000Z', storedSize: saved.length, legacy: true },
      );

      const table = (await runCliOk(['list', ...common, '--include-legacy'])).stdout;
      assert.match(table, /^LEGACY OBJECT \(original chart, no manifest\)\s+CREATED\s+STORED$/m);
      assert.match(table, new RegExp(`^${OLDER.replace(/[.]/g, '\\.')}\\s+2024-05-01T03:04:05Z\\s`, 'm'));

      const ok = (await runCliOk(['verify', OLDER, ...common])).stdout;
      assert.match(ok, new RegExp(`legacy object ${OLDER}: OK \\(original chart, no manifest\\)`));
      assert.match(ok, /matches etcd's trailer in the object/);
      assert.match(ok, new RegExp(`revision ${savedRevision}, `));

      const noTrailer = JSON.parse((await runCliOk(['verify', NO_TRAILER, ...common, '--json'])).stdout) as {
        trailerChecked: boolean;
        status: { revision: number };
      };
      assert.equal(noTrailer.trailerChecked, false);
      assert.equal(noTrailer.status.revision, savedRevision);

      const corrupt = await runCli(['verify', CORRUPT, ...common]);
      assert.equal(corrupt.code, 1);
      assert.match(
        corrupt.stderr,
        new RegExp(`legacy object ${CORRUPT.replace(/[.]/g, '\\.')} in .* is corrupt: SHA-256 mismatch`),
      );
      const notBbolt = await runCli(['verify', NOT_BBOLT, ...common]);
      assert.equal(notBbolt.code, 1);
      assert.match(notBbolt.stderr, /is not a usable etcd database: .*not a bbolt database/);
      const missing = await runCli(['verify', '2023-01-01/etcd-backup-2023-01-01T00:00:00.db', ...common]);
      assert.equal(missing.code, 1);
      assert.match(
        missing.stderr,
        /no object "2023-01-01\/etcd-backup-2023-01-01T00:00:00\.db".*list --include-legacy/,
      );

      const dataDir = join(work.path, `restored-${c.name.replace(/\W/g, '')}`);
      const peer = `http://127.0.0.1:${await freePort()}`;
      const failed = await runCli(['restore', CORRUPT, ...common, '--data-dir', dataDir]);
      assert.equal(failed.code, 1);
      await assert.rejects(readFile(join(dataDir, 'member')), 'nothing restored from a corrupt object');
      // The trailer-less copy needs etcd's --skip-hash-check; the restore must still succeed.
      const restore = await runCliOk([
        'restore',
        c.name === 'file store' ? NO_TRAILER : OLDER,
        ...common,
        '--data-dir',
        dataDir,
        '--name',
        'legacy',
        '--initial-advertise-peer-urls',
        peer,
      ]);
      assert.match(restore.stdout, new RegExp(`restored revision ${savedRevision} into ${dataDir}`));
      restored = await startEtcd({ dataDir, name: 'legacy' });
      const got = await restored.client.getAll().prefix('/registry/configmaps/').keys();
      assert.equal(got.length, 200);

      // Retention over the whole bucket: keep one of ours, orphans of any age are fair game, and
      // still every one of the original's objects stays.
      const keys = async () => (await store.list('')).map((o) => o.key).sort();
      const originals = (await keys()).filter((k) => !k.startsWith('prod/'));
      const pruned = await runCliOk(['prune', ...common, ...keepLastOnly(1), '--orphan-age', '0s', '--json']);
      const report = JSON.parse(pruned.stdout) as { deleted: unknown[] };
      assert.equal(report.deleted.length, 1, 'prune deleted one of our snapshots');
      const left = await keys();
      assert.deepEqual(
        left.filter((k) => !k.startsWith('prod/')),
        originals,
      );
      for (const k of originals.filter((k) => parseLegacyKey(k))) assert.ok(left.includes(k));
      assert.ok(originals.includes(OLDER));
    } finally {
      await restored?.stop();
      await store.close();
    }
  });
}
