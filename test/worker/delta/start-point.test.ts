import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decideStart, type StartInputs } from '../../../worker/delta/start-point.js';
import type { DeltaGap, DeltaManifest } from '../../../worker/delta/segment.js';
import type { Manifest } from '../../../worker/manifest.js';
import { fakeDeltaManifest } from '../../support/manifests.js';

const NOW = '2026-12-02T02:00:00.000Z';

function segment(first: number, last: number, follows = 'snap-100', startRevision = 101): DeltaManifest {
  return fakeDeltaManifest(first, last, { follows, startRevision }, () => NOW);
}

function snapshot(id: string, revision: number, createdAt = '2026-12-02T01:00:00.000Z'): Manifest {
  return { id, createdAt, etcd: { revision } } as Manifest;
}

function gap(fromRevision: number, toRevision?: number, detectedAt = '2026-12-02T01:30:00.000Z'): DeltaGap {
  return {
    format: 'etcd-autobackup-delta/v1',
    cluster: 'c',
    fromRevision,
    ...(toRevision === undefined ? {} : { toRevision }),
    reason: 'compacted',
    detail: 'test',
    detectedAt,
  };
}

/** What readDeltaLogEnd tells the writer of these segments: their names and the newest manifest. */
function logOf(manifests: DeltaManifest[]): Pick<StartInputs, 'segments' | 'newest'> {
  const newest = [...manifests].sort((a, b) => b.lastRevision - a.lastRevision)[0];
  return { segments: manifests.map((m) => ({ firstRevision: m.firstRevision, lastRevision: m.lastRevision })), newest };
}

describe('where a new delta-log writer starts', () => {
  it('continues a whole chain right after its last segment, whatever newer snapshots exist', () => {
    const start = decideStart({
      ...logOf([segment(101, 150), segment(151, 200)]),
      gaps: [],
      snapshots: [snapshot('snap-100', 100), snapshot('snap-180', 180)],
      now: NOW,
    });
    assert.deepEqual(
      { kind: start.kind, ...(start.kind === 'watch' ? { chain: start.chain, next: start.next } : {}) },
      { kind: 'watch', chain: { follows: 'snap-100', startRevision: 101 }, next: 201 },
    );
  });

  it('without a log starts after the newest snapshot (revision + 1)', () => {
    const start = decideStart({
      ...logOf([]),
      gaps: [],
      snapshots: [snapshot('a', 50), snapshot('b', 90), snapshot('c', 70)],
      now: NOW,
    });
    assert.equal(start.kind, 'watch');
    if (start.kind === 'watch') {
      assert.deepEqual(start.chain, { follows: 'b', startRevision: 91 });
      assert.equal(start.next, 91);
    }
  });

  it('without a log or a snapshot asks for a snapshot, recording no gap', () => {
    const start = decideStart({ segments: [], newest: undefined, gaps: [], snapshots: [], now: NOW });
    assert.deepEqual(start.kind === 'snapshot' && { notBefore: start.notBefore, gap: start.gap }, {
      notBefore: NOW,
      gap: undefined,
    });
  });

  it('a missing segment in the newest chain is a gap to record, never skipped', () => {
    const start = decideStart({
      ...logOf([segment(101, 150), segment(171, 200)]),
      gaps: [],
      snapshots: [snapshot('snap-100', 100)],
      now: NOW,
    });
    assert.equal(start.kind, 'snapshot');
    if (start.kind === 'snapshot') {
      assert.equal(start.gap?.reason, 'segment-missing');
      assert.equal(start.gap?.fromRevision, 151);
      assert.equal(start.gap?.toRevision, 170);
      assert.equal(start.notBefore, NOW);
    }
  });

  it('a gap an earlier writer recorded starts the new chain after its snapshot, or waits for one', () => {
    const manifests = [segment(101, 150)];
    const closed = decideStart({
      ...logOf(manifests),
      gaps: [gap(151, 400)],
      snapshots: [
        snapshot('snap-100', 100),
        snapshot('old-400', 400, '2026-12-02T01:00:00.000Z'),
        snapshot('snap-400', 400, '2026-12-02T01:31:00.000Z'),
      ],
      now: NOW,
    });
    assert.equal(closed.kind === 'watch' && closed.chain.follows, 'snap-400', 'taken after the gap was found');
    assert.equal(closed.kind === 'watch' && closed.next, 401);

    const open = decideStart({
      ...logOf(manifests),
      gaps: [gap(151)],
      snapshots: [snapshot('snap-100', 100)],
      now: NOW,
    });
    assert.equal(open.kind, 'snapshot');
    if (open.kind === 'snapshot') {
      assert.equal(open.notBefore, '2026-12-02T01:30:00.000Z', 'a snapshot taken after the gap was found');
      assert.equal(open.gap, undefined, 'already recorded');
    }
  });

  it('an old gap behind the newest chain changes nothing', () => {
    const start = decideStart({
      ...logOf([segment(101, 150), segment(501, 600, 'snap-500', 501)]),
      gaps: [gap(151, 500)],
      snapshots: [snapshot('snap-500', 500)],
      now: NOW,
    });
    assert.equal(start.kind === 'watch' && start.next, 601);
    assert.equal(start.kind === 'watch' && start.chain.follows, 'snap-500');
  });
});

describe('after retention removed the oldest segments', () => {
  it('a chain reaching back to a kept snapshot continues; one that does not is a gap', () => {
    const pruned = [segment(201, 250), segment(251, 320)];
    const kept = decideStart({ ...logOf(pruned), gaps: [], snapshots: [snapshot('snap-200', 200)], now: NOW });
    assert.equal(kept.kind === 'watch' && kept.next, 321);
    assert.deepEqual(kept.kind === 'watch' && kept.chain, { follows: 'snap-100', startRevision: 101 });
    const lost = decideStart({ ...logOf(pruned), gaps: [], snapshots: [snapshot('snap-150', 150)], now: NOW });
    assert.equal(lost.kind === 'snapshot' && lost.gap?.reason, 'segment-missing');
  });
});
