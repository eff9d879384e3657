import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { findSnapshot, listSnapshots, SnapshotNotFoundError } from '../../worker/catalog.js';
import { objectKey } from '../../worker/manifest.js';
import { FileStore } from '../../worker/stores/file.js';
import { fakeManifest, publishFake } from '../support/manifests.js';
import { tempDir } from '../support/tmp.js';

test('listSnapshots: only published snapshots of the cluster, newest first; the rest reported', async () => {
  const dir = await tempDir('catalog');
  try {
    const store = new FileStore(dir.path);
    const older = fakeManifest('prod', '20260101T000000Z-r10-aaaa', '2026-01-01T00:00:00.000Z', 10);
    const newer = fakeManifest('prod', '20260102T000000Z-r20-bbbb', '2026-01-02T00:00:00.000Z', 20);
    const sameTimeHigherRev = fakeManifest('prod', '20260102T000000Z-r21-cccc', '2026-01-02T00:00:00.000Z', 21);
    for (const m of [newer, older, sameTimeHigherRev]) await publishFake(store, m);
    // Another cluster sharing the store, an upload without a manifest, a manifest without its object, garbage.
    await publishFake(store, fakeManifest('staging', '20270101T000000Z-r1-dddd', '2027-01-01T00:00:00.000Z', 1));
    await store.put(objectKey('prod', '20280101T000000Z-r5-eeee', 'gzip'), Readable.from([Buffer.from('partial')]));
    const orphan = fakeManifest('prod', '20290101T000000Z-r6-ffff', '2029-01-01T00:00:00.000Z', 6);
    await publishFake(store, orphan, false);
    await store.put('prod/snapshots/20300101T000000Z-r7-0000.manifest.json', Readable.from(['{not json']));

    const invalid: string[] = [];
    const listed = await listSnapshots(store, 'prod', {
      concurrency: 2,
      onInvalid: (key, problem) => invalid.push(`${key}: ${problem}`),
    });
    assert.deepEqual(
      listed.map((m) => m.id),
      [sameTimeHigherRev.id, newer.id, older.id],
    );
    assert.equal(invalid.length, 2);
    assert.match(invalid.join('\n'), /20290101T000000Z-r6-ffff\.manifest\.json: its snapshot object .* is missing/);
    assert.match(invalid.join('\n'), /20300101T000000Z-r7-0000\.manifest\.json: manifest .* is not JSON/);

    assert.equal((await findSnapshot(store, 'prod', 'latest')).id, sameTimeHigherRev.id);
    assert.equal((await findSnapshot(store, 'prod', older.id)).id, older.id);
    await assert.rejects(findSnapshot(store, 'prod', '20000101T000000Z-r1-0000'), (err: unknown) => {
      assert.ok(err instanceof SnapshotNotFoundError);
      assert.match(err.message, /no snapshot "20000101T000000Z-r1-0000" of cluster "prod" .*etcd-autobackup list/);
      return true;
    });
    await assert.rejects(findSnapshot(store, 'prod', 'a/../b'), SnapshotNotFoundError);
    await assert.rejects(findSnapshot(store, 'empty', 'latest'), /no snapshots of cluster "empty"/);
  } finally {
    await dir.remove();
  }
});
