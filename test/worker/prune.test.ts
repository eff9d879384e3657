import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { retentionSchema, type RetentionConfig } from '../../core/config/schema.js';
import { createLogger, type Logger } from '../../core/logger.js';
import { manifestKey, objectKey, type Manifest } from '../../worker/manifest.js';
import { prune, PruneError, type PruneOptions } from '../../worker/prune.js';
import { FileStore } from '../../worker/stores/file.js';
import { openS3Store } from '../../worker/stores/s3.js';
import type { ObjectInfo, Store } from '../../worker/stores/store.js';
import { startS3rver } from '../support/s3rver.js';
import { s3rverConfig } from '../support/store-helpers.js';
import { fakeManifest, publishFake } from '../support/manifests.js';
import { tempDir } from '../support/tmp.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const CLUSTER = 'prod';

function manifest(cluster: string, createdAt: string, revision: number, extra: Partial<Manifest> = {}): Manifest {
  const stamp = createdAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return fakeManifest(
    cluster,
    `${stamp}-r${revision}-${revision.toString(16).padStart(4, '0')}`,
    createdAt,
    revision,
    extra,
  );
}

/** Hourly snapshots of `cluster`, the newest at `end`. */
async function hourly(
  store: Store,
  cluster: string,
  end: string,
  count: number,
  firstRevision = 100,
): Promise<Manifest[]> {
  const out: Manifest[] = [];
  for (let i = 0; i < count; i++) {
    const m = manifest(cluster, new Date(new Date(end).getTime() - i * HOUR).toISOString(), firstRevision + count - i);
    await publishFake(store, m);
    out.push(m);
  }
  return out;
}

async function files(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, e.name);
      if (e.isDirectory()) await walk(full);
      else out.push(relative(root, full).split(sep).join('/'));
    }
  };
  await walk(root);
  return out.sort();
}

function capture(): { log: Logger; lines: () => { msg: string; [k: string]: unknown }[] } {
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      raw.push(chunk.toString());
      cb();
    },
  });
  return {
    log: createLogger({ level: 'info', format: 'json', destination }),
    lines: () =>
      raw
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { msg: string }),
  };
}

const policy = (over: Partial<RetentionConfig> = {}): RetentionConfig =>
  retentionSchema.parse({ keepLast: 3, hourly: 0, daily: 0, weekly: 0, monthly: 0, ...over });

async function withStore(fn: (store: FileStore, root: string) => Promise<void>): Promise<void> {
  const dir = await tempDir('prune');
  try {
    await fn(new FileStore(dir.path), dir.path);
  } finally {
    await dir.remove();
  }
}

function options(store: Store, log: Logger, over: Partial<PruneOptions> = {}): PruneOptions {
  return { store, cluster: CLUSTER, retention: policy(), snapshotTimeoutMs: 30 * 60_000, log, ...over };
}

test('prune deletes what no rule keeps (manifest and object), logs why, and leaves everything else alone', async () => {
  await withStore(async (store, root) => {
    const snaps = await hourly(store, CLUSTER, '2026-03-10T12:00:00.000Z', 16);
    await hourly(store, 'staging', '2026-03-10T12:00:00.000Z', 5);
    // Not ours: another tool's files under our prefix, a sub-folder, and a sibling prefix.
    const foreign = [
      'prod/snapshots/README.md',
      'prod/snapshots/manual/20200101T000000Z-r1-aaaa.db.gz',
      'prod/snapshots/old-backup.db',
      'prod/other/20200101T000000Z-r1-aaaa.db.gz',
    ];
    for (const key of foreign) await store.put(key, Readable.from([Buffer.from('keep me')]));
    const before = await files(root);
    const { log, lines } = capture();

    const report = await prune(options(store, log, { retention: policy({ keepLast: 3, daily: 2 }) }));

    // 21:00 on the 9th to 12:00 on the 10th: keepLast 3 keeps 12:00, 11:00, 10:00; daily 2 adds the 9th's newest.
    assert.deepEqual(
      report.kept.map((k) => k.createdAt),
      ['2026-03-10T12:00:00.000Z', '2026-03-10T11:00:00.000Z', '2026-03-10T10:00:00.000Z', '2026-03-09T23:00:00.000Z'],
    );
    assert.deepEqual(report.kept[0]?.reasons, ['last 1/3', 'daily 2026-03-10', 'newest verified']);
    assert.deepEqual(report.kept[3]?.reasons, ['daily 2026-03-09']);
    const gone = snaps.slice(3).filter((m) => m.createdAt !== '2026-03-09T23:00:00.000Z');
    assert.equal(gone.length, 12);
    assert.deepEqual(
      report.deleted.map((d) => d.id),
      gone.map((m) => m.id),
    );
    assert.equal(
      report.foreign,
      3,
      'README.md, the sub-folder object and old-backup.db are under the prefix but not ours',
    );

    const after = await files(root);
    const removed = before.filter((f) => !after.includes(f));
    assert.deepEqual(removed.sort(), gone.flatMap((m) => [m.key, manifestKey(CLUSTER, m.id)]).sort());
    for (const key of foreign) assert.ok(after.includes(key), `${key} untouched`);
    assert.equal(after.filter((f) => f.startsWith('staging/')).length, 10, 'another cluster is never pruned');

    const deletions = lines().filter((l) => l.msg.startsWith('deleted snapshot'));
    assert.equal(deletions.length, gone.length);
    assert.match(
      deletions[0]?.msg ?? '',
      /^deleted snapshot \S+: kept by no retention rule \(last 3, hourly 0, daily 2, weekly 0, monthly 0\)$/,
    );
    assert.deepEqual(deletions[0]?.keys, [manifestKey(CLUSTER, gone[0]?.id ?? ''), gone[0]?.key]);

    const again = await prune(options(store, log, { retention: policy({ keepLast: 3, daily: 2 }) }));
    assert.equal(again.deleted.length, 0, 'a second run finds nothing more to delete');
  });
});

test('--dry-run reports the same plan and deletes nothing', async () => {
  await withStore(async (store, root) => {
    await hourly(store, CLUSTER, '2026-03-10T12:00:00.000Z', 5);
    await store.put(objectKey(CLUSTER, '20200101T000000Z-r1-aaaa', 'gzip'), Readable.from([Buffer.from('orphan')]));
    const before = await files(root);
    const { log, lines } = capture();
    const later = () => new Date(Date.now() + 2 * DAY);
    const dry = await prune(options(store, log, { dryRun: true, now: later }));
    assert.equal(dry.dryRun, true);
    assert.equal(dry.deleted.length, 2);
    assert.deepEqual(
      dry.orphans.map((o) => o.key),
      ['prod/snapshots/20200101T000000Z-r1-aaaa.db.gz'],
    );
    assert.deepEqual(await files(root), before);
    assert.equal(lines().filter((l) => l.msg.startsWith('deleted')).length, 0);

    const real = await prune(options(store, log, { now: later }));
    assert.deepEqual(
      real.deleted.map((d) => d.id),
      dry.deleted.map((d) => d.id),
    );
    assert.deepEqual(real.orphans, dry.orphans);
  });
});

/** A store that delegates to `inner` and can fail or record chosen calls. */
class FaultyStore implements Store {
  readonly location: string;
  failList = false;
  failGet: ((key: string) => boolean) | undefined;
  failDelete: ((key: string) => boolean) | undefined;
  listed: ObjectInfo[] | undefined;
  readonly deletes: string[] = [];
  constructor(private readonly inner: Store) {
    this.location = inner.location;
  }
  put(...args: Parameters<Store['put']>) {
    return this.inner.put(...args);
  }
  async list(prefix: string) {
    if (this.failList) throw new Error('connection reset while listing');
    return this.listed ?? this.inner.list(prefix);
  }
  async get(key: string) {
    if (this.failGet?.(key)) throw new Error('HTTP 500 while reading');
    return this.inner.get(key);
  }
  async delete(key: string) {
    if (this.failDelete?.(key)) throw new Error('HTTP 503 while deleting');
    this.deletes.push(key);
    return this.inner.delete(key);
  }
  close() {
    return this.inner.close();
  }
}

test('a failing listing or manifest read deletes nothing', async () => {
  await withStore(async (file, root) => {
    await hourly(file, CLUSTER, '2026-03-10T12:00:00.000Z', 6);
    const before = await files(root);
    const store = new FaultyStore(file);
    const { log } = capture();

    store.failList = true;
    await assert.rejects(prune(options(store, log)), (err: unknown) => {
      assert.ok(err instanceof PruneError);
      assert.match(
        err.message,
        /listing prod\/snapshots\/ in file:\/\/.* failed, so nothing was deleted: connection reset while listing/,
      );
      return true;
    });
    store.failList = false;

    // One manifest that cannot be fetched: the set of snapshots is unknown, so nothing goes.
    store.failGet = (key) => key.includes('T090000Z');
    await assert.rejects(
      prune(options(store, log)),
      /reading manifest .*T090000Z.* failed, so nothing was deleted: HTTP 500 while reading/,
    );

    assert.deepEqual(store.deletes, []);
    assert.deepEqual(await files(root), before);
  });
});

test('a listing without the snapshot just published is stale: nothing is deleted', async () => {
  await withStore(async (file) => {
    const snaps = await hourly(file, CLUSTER, '2026-03-10T12:00:00.000Z', 6);
    const store = new FaultyStore(file);
    // A listing that lags behind the newest upload, as an eventually consistent listing could.
    store.listed = (await file.list('prod/snapshots/')).filter((o) => !o.key.includes(snaps[0]?.id ?? '?'));
    const { log } = capture();
    await assert.rejects(
      prune(options(store, log, { mustInclude: snaps[0]?.id ?? '' })),
      /lacks snapshot .* which was just published; .* nothing was deleted/,
    );
    assert.deepEqual(store.deletes, []);
  });
});

test('manifest goes before its object; a failed object delete leaves an orphan the next run removes', async () => {
  await withStore(async (file, root) => {
    const snaps = await hourly(file, CLUSTER, '2026-03-10T12:00:00.000Z', 5);
    const store = new FaultyStore(file);
    const { log } = capture();
    const doomed = snaps.slice(3);
    store.failDelete = (key) => key === doomed[0]?.key;

    await assert.rejects(prune(options(store, log)), (err: unknown) => {
      assert.ok(err instanceof PruneError);
      assert.match(
        err.message,
        /deleting prod\/snapshots\/.*\.db\.gz from .* failed: HTTP 503 while deleting; this run deleted 0 snapshot\(s\) and 0 orphan\(s\) before/,
      );
      return true;
    });
    // Unpublished first: no reader can find a manifest whose object is gone.
    assert.deepEqual(store.deletes, [manifestKey(CLUSTER, doomed[0]?.id ?? '')]);
    assert.ok((await files(root)).includes(doomed[0]?.key ?? '?'));

    store.failDelete = undefined;
    const next = await prune(options(store, log, { now: () => new Date(Date.now() + 2 * DAY) }));
    assert.deepEqual(
      next.deleted.map((d) => d.id),
      [doomed[1]?.id],
    );
    assert.deepEqual(next.orphans, [{ key: doomed[0]?.key, reason: 'snapshot object without a manifest' }]);
    assert.deepEqual(store.deletes.slice(1), [
      manifestKey(CLUSTER, doomed[1]?.id ?? ''),
      doomed[1]?.key,
      doomed[0]?.key,
    ]);
    assert.deepEqual(
      (await files(root)).filter((f) => f.startsWith('prod/')),
      snaps
        .slice(0, 3)
        .flatMap((m) => [m.key, manifestKey(CLUSTER, m.id)])
        .sort(),
    );
  });
});

test('orphans go only when older than the safe age; unreadable manifests are never deleted', async () => {
  await withStore(async (store, root) => {
    const [newest] = await hourly(store, CLUSTER, '2026-03-10T12:00:00.000Z', 2);
    const noManifest = objectKey(CLUSTER, '20260101T000000Z-r5-0005', 'gzip');
    await store.put(noManifest, Readable.from([Buffer.from('upload without manifest')]));
    const lost = manifest(CLUSTER, '2026-01-02T00:00:00.000Z', 6);
    await publishFake(store, lost, false);
    const garbled = '20260103T000000Z-r7-0007';
    await store.put(manifestKey(CLUSTER, garbled), Readable.from(['{not json']));
    await store.put(objectKey(CLUSTER, garbled, 'gzip'), Readable.from([Buffer.from('maybe precious')]));
    // A manifest whose object exists under a name we do not write: neither is judged.
    const oddName = manifest(CLUSTER, '2026-01-03T12:00:00.000Z', 11);
    oddName.key = `${oddName.key}.enc`;
    await publishFake(store, oddName);
    const alien = manifest('staging', '2026-01-04T00:00:00.000Z', 8);
    await store.put(manifestKey(CLUSTER, alien.id), Readable.from([JSON.stringify(alien)]));
    // Temp files of interrupted file-store writes: one stale, one fresh; and a foreign look-alike.
    const dir = join(root, 'prod', 'snapshots');
    await mkdir(dir, { recursive: true });
    const staleTemp = join(dir, '20260105T000000Z-r9-0009.db.gz.partial-0badf00d');
    const freshTemp = join(dir, '20260106T000000Z-r10-000a.db.gz.partial-12345678');
    const notOurs = join(dir, 'notes.txt.partial-0badf00d');
    for (const f of [staleTemp, freshTemp, notOurs]) await writeFile(f, 'partial');
    const old = new Date(Date.now() - 3 * DAY);
    await utimes(staleTemp, old, old);
    await utimes(notOurs, old, old);
    const { log } = capture();
    const keepAll = policy({ keepLast: 10 });

    // Now: everything just written is too young to be judged an orphan.
    const young = await prune(options(store, log, { retention: keepAll }));
    assert.deepEqual(
      young.orphans.map((o) => o.key),
      ['prod/snapshots/20260105T000000Z-r9-0009.db.gz.partial-0badf00d'],
    );
    assert.ok(
      young.skipped.some(
        (s) => s.key === noManifest && /not older than 24h: it may still be being written/.test(s.reason),
      ),
    );
    assert.ok(!(await files(root)).includes(relative(root, staleTemp).split(sep).join('/')));

    // Two days later they are orphans, except what an unusable manifest guards.
    const later = await prune(options(store, log, { retention: keepAll, now: () => new Date(Date.now() + 2 * DAY) }));
    assert.deepEqual(later.orphans.map((o) => [o.key, o.reason]).sort(), [
      [noManifest, 'snapshot object without a manifest'],
      [manifestKey(CLUSTER, lost.id), `manifest whose object ${lost.key} is missing`],
      [
        'prod/snapshots/20260106T000000Z-r10-000a.db.gz.partial-12345678',
        'upload temp file left by an interrupted write',
      ],
    ]);
    const skipped = later.skipped.map((s) => `${s.key}: ${s.reason}`).join('\n');
    assert.match(
      skipped,
      new RegExp(
        `${garbled}\\.manifest\\.json: unusable manifest \\(manifest .* is not JSON\\); left with its object, never deleted blindly`,
      ),
    );
    assert.match(skipped, new RegExp(`${garbled}\\.db\\.gz: its manifest .* is unusable`));
    assert.match(
      skipped,
      new RegExp(
        `${alien.id}\\.manifest\\.json: unusable manifest \\(it describes staging/${alien.id}, not prod/${alien.id}\\)`,
      ),
    );

    assert.match(
      skipped,
      new RegExp(
        `${oddName.id}\\.manifest\\.json: its object ${oddName.key} is not named as this service names snapshots; left alone`,
      ),
    );

    const left = await files(root);
    for (const key of [
      manifestKey(CLUSTER, oddName.id),
      oddName.key,
      manifestKey(CLUSTER, garbled),
      objectKey(CLUSTER, garbled, 'gzip'),
      manifestKey(CLUSTER, alien.id),
      newest?.key ?? '?',
    ]) {
      assert.ok(left.includes(key), `${key} kept`);
    }
    assert.ok(left.includes('prod/snapshots/notes.txt.partial-0badf00d'), 'a temp-looking file that is not ours stays');
    assert.equal(later.deleted.length, 0);
  });
});

test('the newest verified snapshot survives counts of zero; disabled retention deletes nothing', async () => {
  await withStore(async (store, root) => {
    const snaps = await hourly(store, CLUSTER, '2026-03-10T12:00:00.000Z', 3);
    const unverified = manifest(CLUSTER, '2026-03-10T13:00:00.000Z', 500, { transforms: ['gzip'] });
    await publishFake(store, unverified);
    const before = await files(root);
    const { log } = capture();

    const off = await prune(options(store, log, { retention: { ...policy(), enabled: false, keepLast: 0 } }));
    assert.equal(off.enabled, false);
    assert.deepEqual(await files(root), before);

    const zero = { ...policy(), keepLast: 0 };
    const report = await prune(options(store, log, { retention: zero }));
    assert.deepEqual(
      report.kept.map((k) => [k.id, k.reasons]),
      [[snaps[0]?.id, ['newest verified']]],
    );
    assert.deepEqual(
      report.deleted.map((d) => d.id),
      [unverified.id, snaps[1]?.id, snaps[2]?.id],
    );
  });
});

test('prune works the same on an S3 store (s3rver): only our names, manifest first', async () => {
  const server = await startS3rver({ buckets: ['backups'] });
  const s3 = openS3Store('s3://backups/etcd', s3rverConfig(server.endpoint), { pageSize: 3 });
  try {
    const snaps = await hourly(s3, CLUSTER, '2026-03-10T12:00:00.000Z', 5);
    await s3.put('prod/snapshots/someone-elses.tar', Readable.from([Buffer.from('x')]));
    const store = new FaultyStore(s3);
    const { log } = capture();
    const report = await prune(options(store, log, { retention: policy({ keepLast: 2 }) }));
    assert.deepEqual(
      report.deleted.map((d) => d.id),
      snaps.slice(2).map((m) => m.id),
    );
    assert.equal(report.foreign, 1);
    assert.deepEqual(
      store.deletes,
      snaps.slice(2).flatMap((m) => [manifestKey(CLUSTER, m.id), m.key]),
    );
    assert.deepEqual(
      (await s3.list('prod/')).map((o) => o.key),
      [
        ...snaps.slice(0, 2).flatMap((m) => [m.key, manifestKey(CLUSTER, m.id)]),
        'prod/snapshots/someone-elses.tar',
      ].sort(),
    );
  } finally {
    await s3.close();
    await server.stop();
  }
});

test('clusters sharing one S3 bucket are pruned each by its own policy, never touching another cluster (even one whose name extends it)', async () => {
  const server = await startS3rver({ buckets: ['backups'] });
  const s3 = openS3Store('s3://backups/etcd', s3rverConfig(server.endpoint), { pageSize: 4 });
  try {
    const end = '2026-03-10T12:00:00.000Z';
    const clusters = { prod: 6, 'prod-eu': 5, staging: 4 };
    const made: Record<string, Manifest[]> = {};
    for (const [cluster, count] of Object.entries(clusters)) made[cluster] = await hourly(s3, cluster, end, count);
    const keepLast = { prod: 2, 'prod-eu': 3, staging: 1 };
    const { log } = capture();
    for (const [cluster, keep] of Object.entries(keepLast)) {
      const report = await prune(options(s3, log, { cluster, retention: policy({ keepLast: keep }) }));
      assert.deepEqual(
        report.deleted.map((d) => d.id),
        (made[cluster] as Manifest[]).slice(keep).map((m) => m.id),
        `${cluster} deletes only its own surplus`,
      );
      assert.equal(report.foreign, 0, `${cluster} sees no other cluster's objects as its own or as foreign`);
    }
    const left: string[] = [];
    for (const cluster of Object.keys(clusters)) left.push(...(await s3.list(`${cluster}/`)).map((o) => o.key));
    left.sort();
    const expected = Object.entries(keepLast)
      .flatMap(([cluster, keep]) =>
        (made[cluster] as Manifest[]).slice(0, keep).flatMap((m) => [m.key, manifestKey(cluster, m.id)]),
      )
      .sort();
    assert.deepEqual(left, expected);
  } finally {
    await s3.close();
    await server.stop();
  }
});

test("the original chart's objects (<YYYY-MM-DD>/etcd-backup-<timestamp>.db at the bucket root) are never pruned", async () => {
  await withStore(async (store, root) => {
    await hourly(store, CLUSTER, '2026-03-10T12:00:00.000Z', 5);
    const original = ['2024-03-01/etcd-backup-1709251200.db', '2024-03-02/etcd-backup-1709337600.db'];
    for (const key of original) {
      await store.put(key, Readable.from([Buffer.from('original snapshot')]));
      // Years old: older than any orphanAge.
      const old = new Date('2024-03-02T00:00:00Z');
      await utimes(join(root, key), old, old);
    }
    const { log } = capture();
    const report = await prune(options(store, log, { retention: policy({ keepLast: 1, orphanAge: 0 }) }));
    assert.equal(report.deleted.length, 4);
    const after = await files(root);
    for (const key of original) assert.ok(after.includes(key), `${key} untouched`);
  });
});
