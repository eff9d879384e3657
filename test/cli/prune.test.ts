import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { manifestKey, type Manifest } from '../../worker/manifest.js';
import type { PruneReport } from '../../worker/prune.js';
import { FileStore } from '../../worker/stores/file.js';
import { keepLastOnly, runCli, runCliOk } from '../support/cli.js';
import { fakeManifest, publishFake } from '../support/manifests.js';
import { tempDir } from '../support/tmp.js';

/** Five hourly snapshots of `prod`, written with the real naming, newest first. */
async function fiveSnapshots(store: FileStore): Promise<Manifest[]> {
  const out: Manifest[] = [];
  for (let i = 0; i < 5; i++) {
    const createdAt = new Date(Date.UTC(2026, 2, 10, 12 - i)).toISOString();
    const id = `20260310T${String(12 - i).padStart(2, '0')}0000Z-r${50 - i}-00${i}f`;
    const m = fakeManifest('prod', id, createdAt, 50 - i);
    await publishFake(store, m);
    out.push(m);
  }
  return out;
}

test('etcd-autobackup prune: --dry-run prints the plan and deletes nothing; prune deletes it; --json reports', async () => {
  const work = await tempDir('cli-prune');
  try {
    const store = new FileStore(work.path);
    const snaps = await fiveSnapshots(store);
    await store.put('prod/snapshots/notes.txt', Readable.from(['not ours']));
    const dir = `${work.path}/prod/snapshots`;
    const before = (await readdir(dir)).sort();
    const env = {
      ETCD_AUTOBACKUP_STORE: `file://${work.path}`,
      ETCD_AUTOBACKUP_CLUSTER: 'prod',
      ETCD_AUTOBACKUP_LOG_LEVEL: 'error',
    };
    const counts = keepLastOnly(2);

    const dry = await runCliOk(['prune', '--dry-run', ...counts], { env });
    const lines = dry.stdout.trimEnd().split('\n');
    assert.match(
      lines[0] ?? '',
      /^cluster "prod" in file:\/\/\S+: 5 snapshot\(s\), keeping 2, would delete 3 \(dry run: nothing deleted\)$/,
    );
    assert.match(lines[1] ?? '', new RegExp(`^ {2}keep +${snaps[0]?.id} +last 1/2, newest verified$`));
    assert.match(lines[2] ?? '', new RegExp(`^ {2}keep +${snaps[1]?.id} +last 2/2$`));
    for (const [i, m] of snaps.slice(2).entries()) {
      assert.match(
        lines[3 + i] ?? '',
        new RegExp(
          `^ {2}delete +${m.id} +kept by no retention rule \\(last 2, hourly 0, daily 0, weekly 0, monthly 0\\)$`,
        ),
      );
    }
    assert.equal(lines.at(-1), '  1 object(s) not written by etcd-autobackup left untouched');
    assert.deepEqual((await readdir(dir)).sort(), before);

    const real = await runCliOk(['prune', '--json', ...counts], { env });
    const report = JSON.parse(real.stdout) as PruneReport;
    assert.equal(report.dryRun, false);
    assert.deepEqual(
      report.deleted.map((d) => d.id),
      snaps.slice(2).map((m) => m.id),
    );
    assert.deepEqual(report.deleted[0]?.keys, [manifestKey('prod', snaps[2]?.id ?? ''), snaps[2]?.key]);
    assert.deepEqual(
      (await readdir(dir)).sort(),
      [
        ...snaps.slice(0, 2).flatMap((m) => [m.key.slice(m.key.lastIndexOf('/') + 1), `${m.id}.manifest.json`]),
        'notes.txt',
      ].sort(),
    );

    const off = await runCliOk(['prune', '--no-retention', '--keep-last', '1'], { env });
    assert.match(off.stdout, /^retention is off \(retention\.enabled: false\): nothing deleted in cluster "prod"/);
    assert.equal((await readdir(dir)).length, 5);
  } finally {
    await work.remove();
  }
});

test('etcd-autobackup prune: a listing that fails exits non-zero and says nothing was deleted', async () => {
  const work = await tempDir('cli-prune-fail');
  try {
    // A store path that is a file, not a directory: listing fails with ENOTDIR.
    const store = new FileStore(work.path);
    await store.put('prod', Readable.from(['a file where the cluster folder should be']));
    const r = await runCli(['prune'], {
      env: {
        ETCD_AUTOBACKUP_STORE: `file://${work.path}`,
        ETCD_AUTOBACKUP_CLUSTER: 'prod',
        ETCD_AUTOBACKUP_LOG_LEVEL: 'error',
      },
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: listing prod\/snapshots\/ in file:\/\/\S+ failed, so nothing was deleted: ENOTDIR/);
  } finally {
    await work.remove();
  }
});
