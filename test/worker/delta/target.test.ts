import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Manifest } from '../../../worker/manifest.js';
import { fakeDeltaManifest } from '../../support/manifests.js';
import { resourceKey } from '../../../worker/delta/resource-key.js';
import {
  beforeChangeTarget,
  checkTimeTarget,
  logRuns,
  lookupTime,
  planRestore,
  revisionAtTime,
  TargetError,
} from '../../../worker/delta/target.js';
import { buildChains, type DeltaGap, type DeltaManifest } from '../../../worker/delta/segment.js';

const T0 = Date.parse('2026-12-01T10:00:00Z');
/** Revision r was received at T0 + r seconds in these examples. */
const at = (r: number) => new Date(T0 + r * 1000).toISOString();

function snapshot(id: string, revision: number, currentRevision = revision): Manifest {
  return {
    format: 'etcd-autobackup/v1',
    id,
    cluster: 'c',
    key: `c/snapshots/${id}.db.zst`,
    createdAt: at(revision),
    durationMs: 1,
    etcd: { endpoint: 'e', memberId: '1', clusterId: '2', isLeader: true, version: '3.4.30', revision },
    dbSize: 1,
    snapshotSize: 33,
    storedSize: 1,
    sha256: '0'.repeat(64),
    compression: 'zstd',
    transforms: ['zstd'],
    hashKV: { revision, hash: 1, compactRevision: 0, currentRevision },
    cause: { source: 'manual' },
    tool: { name: 'etcd-autobackup', version: 'test' },
  };
}

function segment(first: number, last: number, follows: string, startRevision: number): DeltaManifest {
  return fakeDeltaManifest(first, last, { follows, startRevision }, at);
}

// snapA@100, chain 101..200 (two segments); gap 201..259; snapB@259, chain 260..300; snapC@280 inside it.
const snapshots = [snapshot('A', 100), snapshot('B', 259), snapshot('C', 280)];
const segments = [
  segment(101, 150, 'A', 101),
  segment(151, 200, 'A', 101),
  segment(260, 279, 'B', 260),
  segment(280, 300, 'B', 260),
];
const { chains } = buildChains(segments);
const runs = logRuns(chains);
const gaps: DeltaGap[] = [
  {
    format: 'etcd-autobackup-delta/v1',
    cluster: 'c',
    fromRevision: 201,
    toRevision: 259,
    reason: 'compacted',
    detail: 'etcd compacted to 250 while the writer was down',
    detectedAt: at(259),
  },
];

describe('planRestore', () => {
  it('starts from the newest snapshot at or below the target and replays only the segments after it', () => {
    const plan = planRestore(175, snapshots, chains);
    assert.equal(plan.sources[0]?.snapshot.id, 'A');
    assert.deepEqual(
      plan.sources[0]?.segments.map((s) => [s.firstRevision, s.lastRevision]),
      [
        [101, 150],
        [151, 200],
      ],
    );
    const late = planRestore(290, snapshots, chains);
    assert.deepEqual(
      late.sources.map((s) => s.snapshot.id),
      ['C', 'B'],
    );
    assert.deepEqual(
      late.sources[0]?.segments.map((s) => s.firstRevision),
      [280],
      'the segment ending at 279 is wholly before snapshot C',
    );
  });

  it("uses any snapshot in the chain's range, not only the one the chain follows", () => {
    // A chain after a gap (fromSnapshot false) is still restorable from a snapshot taken at its start.
    const after = buildChains([segment(101, 150, 'A', 101), segment(171, 220, 'A', 101)]).chains;
    assert.equal(after[1]?.fromSnapshot, false);
    const plan = planRestore(200, [snapshot('A', 100), snapshot('X', 170)], after);
    assert.equal(plan.sources[0]?.snapshot.id, 'X');
  });

  it('a target at a snapshot needs no segments; one written to during its stream is tried last', () => {
    const plan = planRestore(259, snapshots, chains);
    assert.deepEqual(plan.sources[0]?.segments, []);
    const busy = planRestore(190, [snapshot('A', 100), snapshot('D', 180, 195)], chains);
    assert.deepEqual(
      busy.sources.map((s) => s.snapshot.id),
      ['A', 'D'],
      'D may hold revision 195, past the target',
    );
  });

  it('joins chains that continue one another, keeps overlapping histories apart', () => {
    const joined = logRuns(
      buildChains([segment(101, 150, 'A', 101), segment(151, 200, 'N', 151), segment(201, 210, 'N', 151)]).chains,
    );
    assert.deepEqual(
      joined.map((r) => [r.startRevision, r.endRevision, r.segments.length]),
      [[101, 210, 3]],
    );
    const apart = logRuns(buildChains([segment(101, 150, 'A', 101), segment(141, 160, 'R', 141)]).chains);
    assert.equal(apart.length, 2);
    // 155 is only in the newer history; restoring it needs a snapshot on that history.
    assert.throws(
      () =>
        planRestore(
          155,
          [snapshot('A', 100)],
          buildChains([segment(101, 150, 'A', 101), segment(141, 160, 'R', 141)]).chains,
        ),
      TargetError,
    );
  });

  it('names the nearest restorable points for a target in a gap, before the oldest snapshot, or past the log', () => {
    assert.throws(
      () => planRestore(230, snapshots, chains, gaps),
      (err: unknown) => {
        assert.ok(err instanceof TargetError);
        assert.match(
          err.message,
          /revision 230 cannot be restored: the log has a gap: revisions 201\.\.258 are not in it/,
        );
        assert.match(err.message, /compacted, etcd compacted to 250/);
        assert.match(
          err.message,
          /nearest restorable points are revision 200 \(the newest event.*\) and revision 259 \(snapshot B/,
        );
        return true;
      },
    );
    assert.throws(
      () => planRestore(50, snapshots, chains),
      /revision 50 is before the oldest kept snapshot; the oldest restorable point is revision 100 \(snapshot A/,
    );
    assert.throws(
      () => planRestore(301, snapshots, chains),
      /revision 301 is past what the log holds; the newest restorable point is revision 300/,
    );
    assert.throws(() => planRestore(150, [], chains), /no kept snapshots/);
  });
});

describe('--to-time', () => {
  const resolve = (when: number, events: { revision: number; receivedAt: number }[] = []) => {
    const lookup = lookupTime(when, snapshots, runs);
    const revision = lookup.kind === 'revision' ? lookup.revision : revisionAtTime(when, lookup.floor, events);
    return { lookup, revision: checkTimeTarget(when, revision, snapshots, runs, gaps) };
  };

  it('between segments needs no read; inside one it reads that segment only', () => {
    // 150.5 s: after segment 101..150 ended, before 151 began.
    const between = resolve(T0 + 150_500);
    assert.deepEqual(between, { lookup: { kind: 'revision', revision: 150 }, revision: 150 });
    const when = T0 + 170_500;
    const lookup = lookupTime(when, snapshots, runs);
    assert.equal(lookup.kind, 'scan');
    assert.equal(lookup.kind === 'scan' && lookup.segment.firstRevision, 151);
    const events = Array.from({ length: 50 }, (_, i) => ({ revision: 151 + i, receivedAt: T0 + (151 + i) * 1000 }));
    assert.equal(resolve(when, events).revision, 170);
  });

  it('several events of one revision and a snapshot newer than the events count', () => {
    assert.equal(
      revisionAtTime(T0 + 5_000, 0, [
        { revision: 3, receivedAt: T0 + 4_000 },
        { revision: 3, receivedAt: T0 + 4_000 },
        { revision: 4, receivedAt: T0 + 6_000 },
      ]),
      3,
    );
    // Inside the gap in time but after snapshot B was taken: B's revision.
    assert.equal(resolve(T0 + 259_500).revision, 259);
  });

  it('refuses an instant in a gap, before the oldest snapshot, or after the newest event', () => {
    assert.throws(
      () => resolve(T0 + 230_000),
      /falls in a gap of the delta log: after revision 200 .* no events until revision 259 \(snapshot B.*the state at .* is unknown/,
    );
    assert.throws(
      () => resolve(T0 + 50_000),
      /before the oldest kept snapshot; the oldest restorable point is revision 100/,
    );
    assert.throws(
      () => resolve(T0 + 400_000),
      /after the newest event the log holds, revision 300 .*--to-revision 300/,
    );
  });
});

describe('--before', () => {
  it('is the revision just before the newest update or delete of the key', () => {
    const changes = [
      { revision: 120, type: 'put' as const, version: 1, receivedAt: T0, size: 10 },
      { revision: 130, type: 'put' as const, version: 2, receivedAt: T0, size: 11 },
      { revision: 170, type: 'delete' as const, version: 0, receivedAt: T0, size: 0 },
      { revision: 190, type: 'put' as const, version: 1, receivedAt: T0, size: 12 },
    ];
    assert.equal(beforeChangeTarget('/registry/namespaces/prod', changes), 169);
    assert.throws(
      () => beforeChangeTarget('/registry/namespaces/prod', changes.slice(0, 1)),
      /no update or delete of \/registry\/namespaces\/prod, only its creation at revision 120/,
    );
    assert.throws(() => beforeChangeTarget('/registry/x', []), /holds no change of \/registry\/x/);
  });

  it('maps Kubernetes names to the keys kube-apiserver uses', () => {
    const cases: [string, string][] = [
      ['namespaces/prod', '/registry/namespaces/prod'],
      ['configmaps/default/app', '/registry/configmaps/default/app'],
      ['apps/deployments/shop/web', '/registry/deployments/shop/web'],
      ['deployments/shop/web', '/registry/deployments/shop/web'],
      ['batch/cronjobs/ops/nightly', '/registry/cronjobs/ops/nightly'],
      ['services/default/kubernetes', '/registry/services/specs/default/kubernetes'],
      ['endpoints/default/kubernetes', '/registry/services/endpoints/default/kubernetes'],
      ['nodes/worker-1', '/registry/minions/worker-1'],
      ['replicationcontrollers/ns/rc', '/registry/controllers/ns/rc'],
      ['networking.k8s.io/ingresses/shop/web', '/registry/ingress/shop/web'],
      ['rbac.authorization.k8s.io/clusterroles/admin', '/registry/clusterroles/admin'],
      [
        'apiextensions.k8s.io/customresourcedefinitions/certificates.cert-manager.io',
        '/registry/apiextensions.k8s.io/customresourcedefinitions/certificates.cert-manager.io',
      ],
      ['apiregistration.k8s.io/apiservices/v1.apps', '/registry/apiregistration.k8s.io/apiservices/v1.apps'],
      ['cert-manager.io/certificates/shop/tls', '/registry/cert-manager.io/certificates/shop/tls'],
      ['/registry/custom/key', '/registry/custom/key'],
    ];
    for (const [name, key] of cases) assert.equal(resourceKey(name), key, name);
    for (const bad of ['namespaces', 'apps/deployments', 'a/b/c/d', 'configmaps//x', 'secrets/../x']) {
      assert.throws(() => resourceKey(bad), /does not name one object: write \[<group>\/\]<resource>/, bad);
    }
  });
});
