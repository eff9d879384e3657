import { test } from 'node:test';
import assert from 'node:assert/strict';
import { utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { configSchema } from '../../../core/config/index.js';
import { retentionSchema } from '../../../core/config/schema.js';
import { createLogger } from '../../../core/logger.js';
import { listSnapshots } from '../../../worker/catalog.js';
import { readDeltaCatalog, readDeltaLogEnd } from '../../../worker/delta/catalog.js';
import { gapKey, segmentManifestKey, segmentObjectKey, type DeltaEvent } from '../../../worker/delta/segment.js';
import { segmentContent, writeGap, writeSegment } from '../../../worker/delta/segment-write.js';
import { decideStart } from '../../../worker/delta/start-point.js';
import { planDeltaRetention } from '../../../worker/retention.js';
import { prune } from '../../../worker/prune.js';
import { FileStore } from '../../../worker/stores/file.js';
import { fakeManifest, publishFake } from '../../support/manifests.js';
import { tempDir } from '../../support/tmp.js';

const CLUSTER = 'prod';
const ETCD = { endpoint: 'http://127.0.0.1:2379', memberId: 'a', clusterId: 'b', version: '3.4.30' };
const log = createLogger({ level: 'fatal' });

function events(first: number, last: number): DeltaEvent[] {
  const out: DeltaEvent[] = [];
  for (let r = first; r <= last; r++) {
    out.push({
      revision: r,
      type: 'put',
      key: Buffer.from(`/k${r}`),
      value: Buffer.from('v'),
      createRevision: r,
      version: 1,
      lease: '0',
      receivedAt: r,
    });
  }
  return out;
}

test('planDeltaRetention: a segment goes once it ends at or before the oldest kept snapshot; nothing goes without one', () => {
  const segs = [
    { firstRevision: 101, lastRevision: 199 },
    { firstRevision: 200, lastRevision: 200 },
    { firstRevision: 201, lastRevision: 250 },
  ];
  const gaps = [{ fromRevision: 120, toRevision: 180 }, { fromRevision: 260 }, { fromRevision: 300, toRevision: 400 }];
  const plan = planDeltaRetention(segs, gaps, [300, 200]);
  assert.deepEqual(
    plan.remove.map((s) => s.lastRevision),
    [199, 200],
  );
  assert.deepEqual(
    plan.keep.map((s) => s.lastRevision),
    [250],
    'replay from the snapshot at 200 needs 201..',
  );
  assert.deepEqual(plan.removeGaps, [{ fromRevision: 120, toRevision: 180 }]);
  assert.deepEqual(planDeltaRetention(segs, gaps, []).remove, []);
});

test('prune deletes delta segments no kept snapshot needs, old gap records and orphans; the writer can still resume', async () => {
  const dir = await tempDir('prune-deltas');
  try {
    const store = new FileStore(dir.path);
    const config = configSchema.parse({ cluster: CLUSTER, snapshot: { compression: 'gzip' } });
    const snaps = [100, 200, 300].map((rev, i) =>
      fakeManifest(CLUSTER, `2026010${i + 1}T000000Z-r${rev}-00${i}a`, `2026-01-0${i + 1}T00:00:00.000Z`, rev),
    );
    for (const s of snaps) await publishFake(store, s);
    const chain = { follows: snaps[0]?.id ?? '', startRevision: 101 };
    for (const [a, b] of [
      [101, 150],
      [151, 199],
      [200, 200],
      [201, 250],
      [251, 320],
    ] as const) {
      await writeSegment(store, { config, content: segmentContent(events(a, b)), chain, etcd: ETCD });
    }
    const gap = (fromRevision: number, toRevision: number) => ({
      format: 'etcd-autobackup-delta/v1' as const,
      cluster: CLUSTER,
      fromRevision,
      toRevision,
      reason: 'compacted' as const,
      detail: 'test',
      detectedAt: '2026-01-01T00:00:00.000Z',
    });
    await writeGap(store, gap(90, 95));
    await writeGap(store, gap(400, 450));
    // Orphans: an old object without manifest, a young one, an old manifest whose object is gone,
    // an old upload temp file; and a manifest of another cluster, which is left alone.
    const put = (key: string, text: string) => store.put(key, Readable.from([text]));
    const oldObject = segmentObjectKey(CLUSTER, 500, 510, 'gzip', false);
    const youngObject = segmentObjectKey(CLUSTER, 511, 520, 'gzip', false);
    const lostManifest = segmentManifestKey(CLUSTER, 600, 610);
    const foreignManifest = segmentManifestKey(CLUSTER, 700, 710);
    await put(oldObject, 'x');
    await put(youngObject, 'x');
    const [sample] = (await readDeltaCatalog(store, CLUSTER)).manifests;
    await put(
      lostManifest,
      JSON.stringify({
        ...sample,
        firstRevision: 600,
        lastRevision: 610,
        key: segmentObjectKey(CLUSTER, 600, 610, 'gzip', false),
      }),
    );
    await put(
      foreignManifest,
      JSON.stringify({
        ...sample,
        cluster: 'other',
        firstRevision: 700,
        lastRevision: 710,
        key: segmentObjectKey(CLUSTER, 700, 710, 'gzip', false),
      }),
    );
    await put(segmentObjectKey(CLUSTER, 700, 710, 'gzip', false), 'x');
    const temp = join(
      dir.path,
      CLUSTER,
      'deltas',
      `${segmentObjectKey(CLUSTER, 800, 810, 'gzip', false).split('/').pop() ?? ''}.partial-0badf00d`,
    );
    await writeFile(temp, 'x');
    const old = new Date('2026-01-01T00:00:00Z');
    for (const key of [oldObject, lostManifest, foreignManifest, segmentObjectKey(CLUSTER, 700, 710, 'gzip', false)])
      await utimes(join(dir.path, key), old, old);
    await utimes(temp, old, old);

    const retention = retentionSchema.parse({ keepLast: 2, hourly: 0, daily: 0, weekly: 0, monthly: 0 });
    const options = { store, cluster: CLUSTER, retention, snapshotTimeoutMs: 60_000, log, now: () => new Date() };
    const dry = await prune({ ...options, dryRun: true });
    const expectGone = [
      [101, 150],
      [151, 199],
      [200, 200],
    ];
    assert.deepEqual(
      dry.deltaSegmentsDeleted.map((s) => [s.firstRevision, s.lastRevision]),
      expectGone,
    );
    assert.equal((await readDeltaCatalog(store, CLUSTER)).manifests.length, 5, 'a dry run deletes nothing');

    const report = await prune(options);
    assert.deepEqual(
      report.deleted.map((d) => d.id),
      [snaps[0]?.id],
    );
    assert.deepEqual(
      report.deltaSegmentsDeleted.map((s) => [s.firstRevision, s.lastRevision]),
      expectGone,
    );
    assert.equal(report.deltaSegmentsKept, 2);
    const orphanKeys = report.orphans.map((o) => o.key).sort();
    assert.deepEqual(
      orphanKeys,
      [gapKey(CLUSTER, 90), oldObject, lostManifest, `${CLUSTER}/deltas/${temp.split('/').pop() ?? ''}`].sort(),
    );
    assert.ok(
      report.skipped.some((s) => s.key === youngObject),
      'a young object may still be being published',
    );
    assert.ok(
      report.skipped.some((s) => s.key === foreignManifest),
      'an unusable manifest is left alone',
    );

    const after = await readDeltaCatalog(store, CLUSTER);
    assert.deepEqual(
      after.manifests.map((m) => [m.firstRevision, m.lastRevision]),
      [
        [201, 250],
        [251, 320],
      ],
    );
    assert.deepEqual(
      after.gaps.map((g) => g.fromRevision),
      [400],
    );
    // What is left is whole from the oldest kept snapshot: a writer resumes it without a gap.
    const start = decideStart({
      ...(await readDeltaLogEnd(store, CLUSTER)),
      gaps: [],
      snapshots: await listSnapshots(store, CLUSTER),
      now: new Date().toISOString(),
    });
    assert.equal(start.kind === 'watch' && start.next, 321);
  } finally {
    await dir.remove();
  }
});
