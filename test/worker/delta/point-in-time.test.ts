/**
 * Point-in-time restore end to end on real etcd: a source etcd is written to (puts, updates,
 * deletes, multi-key transactions, a prefix delete, leased keys) while a watch records every
 * event; the events are published as segments with the real writeSegment; then restores to many
 * revisions and instants are booted for real and compared key by key with `get --rev` on the
 * source (value, create and mod revision, version), and their revision with the target.
 */
import type { DeltaCoverage } from '../../../cli/commands/delta-coverage.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Etcd3 } from 'etcd3';
import { configSchema, loadConfig, type Config } from '../../../core/config/index.js';
import { createLogger } from '../../../core/logger.js';
import { takeBackup } from '../../../worker/backup.js';
import { loadIdentities } from '../../../worker/crypto/age.js';
import { loadKeyRing } from '../../../worker/crypto/keys.js';
import {
  keyHistory,
  readLogState,
  resolveTarget,
  type LogReadOptions,
  type TargetSpec,
} from '../../../worker/delta/point-in-time.js';
import { replayToRevision } from '../../../worker/delta/replay.js';
import { planRestore, TargetError } from '../../../worker/delta/target.js';
import { startDeltaWriter } from '../../../worker/delta/writer.js';
import type { DeltaEvent, DeltaManifest } from '../../../worker/delta/segment.js';
import type { Manifest } from '../../../worker/manifest.js';
import { mapLimit } from '../../../worker/map-limit.js';
import { FileStore } from '../../../worker/stores/file.js';
import { openStore } from '../../../worker/stores/open.js';
import type { Store } from '../../../worker/stores/store.js';
import { publishSegments, watchAll } from '../../support/delta-log.js';
import { startEtcd, type EtcdServer } from '../../support/etcd.js';
import { freePort, waitFor } from '../../support/ports.js';
import { startRedis } from '../../support/redis.js';
import { writeLoad } from '../../support/delta.js';
import { startS3rver, S3RVER_CREDENTIALS, type S3rverServer } from '../../support/s3rver.js';
import { tempDir } from '../../support/tmp.js';
import { runCli, runCliOk } from '../../support/cli.js';

const run = promisify(execFile);
const CLUSTER = 'pitr';
const PARALLEL_RESTORES = 3;
const log = createLogger({ level: 'warn' });

let source: EtcdServer;
let work: { path: string; remove: () => Promise<void> };
let storeDir: string;
let store: FileStore;
let config: Config;
let snapA: Manifest;
let snapB: Manifest;
let events: DeltaEvent[];
let segments: DeltaManifest[];
/** Revisions worth restoring to, by what happened there. */
const at = {
  firstEvent: 0,
  phase1: 0,
  multiPut: 0,
  beforePrefixDelete: 0,
  prefixDelete: 0,
  leased: 0,
  prodLastUpdate: 0,
  deletes: 0,
  prodDelete: 0,
};
/** Instants in the pauses between phases, and the revision that was current then. */
const pauses: { when: Date; revision: number }[] = [];
let finalRevision = 0;
let prodValue: Buffer;
let shortLease: ReturnType<Etcd3['lease']>;

async function put(client: Etcd3, key: string, value: string | Buffer): Promise<number> {
  return Number((await client.put(key).value(value).exec()).header.revision);
}

async function puts(client: Etcd3, n: number, keyOf: (i: number) => string, tag: string): Promise<number> {
  let revision = 0;
  for (let i = 0; i < n; i += 32) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 32); j++)
      batch.push(put(client, keyOf(j), `${tag}-${j}-${'v'.repeat(j % 90)}`));
    for (const r of await Promise.all(batch)) revision = Math.max(revision, r);
  }
  return revision;
}

async function pause(client: Etcd3): Promise<void> {
  await new Promise((r) => setTimeout(r, 150));
  const revision = Number(
    (await client.kv.range({ key: Buffer.from([0]), limit: 1, keys_only: true })).header.revision,
  );
  pauses.push({ when: new Date(), revision });
  await new Promise((r) => setTimeout(r, 150));
}

before(async () => {
  source = await startEtcd();
  work = await tempDir('pitr');
  storeDir = join(work.path, 'store');
  store = new FileStore(storeDir);
  config = loadConfig({
    env: {},
    flags: { endpoints: source.endpoint, cluster: CLUSTER, store: `file://${storeDir}` },
  });
  const c = source.client;
  await puts(c, 300, (i) => `/registry/configmaps/default/cm-${String(i).padStart(4, '0')}`, 'base');
  await put(c, '/registry/namespaces/prod', 'prod-v1');
  await puts(c, 20, (i) => `/registry/secrets/prod/s${i}`, 'secret');
  snapA = await takeBackup({ config, store, log, cause: { source: 'manual' } });
  const live = await watchAll(c, snapA.etcd.revision + 1);

  // Phase 1: single puts, updates of existing keys and new keys.
  at.firstEvent = snapA.etcd.revision + 1;
  await puts(c, 1000, (i) => `/registry/configmaps/default/cm-${String(i % 400).padStart(4, '0')}`, 'p1');
  at.phase1 = Number((await c.get('/registry/namespaces/prod').exec()).header.revision);
  await pause(c);

  // Phase 2: multi-key transactions, a prefix delete (ten events at one revision), leased keys.
  for (let t = 0; t < 30; t++) {
    const ops = Array.from({ length: 8 }, (_, k) => c.put(`/registry/pods/shop/pod-${t}-${k}`).value(`pod-${t}-${k}`));
    const r = await c
      .if(`/registry/pods/shop/none`, 'Version', '==', 0)
      .then(...ops)
      .commit();
    if (t === 10) at.multiPut = Number(r.header.revision);
  }
  at.beforePrefixDelete = Number((await c.get('/x').exec()).header.revision);
  at.prefixDelete = Number((await c.delete().prefix('/registry/configmaps/default/cm-001').exec()).header.revision);
  const lease = c.lease(600);
  for (let i = 0; i < 5; i++)
    at.leased = Number((await lease.put(`/registry/leases/kube/l${i}`).value(`lease-${i}`).exec()).header.revision);
  await pause(c);
  // A short lease, as kube-apiserver's endpoint leases (15 s): in snapshot B, kept alive on the source.
  shortLease = c.lease(5);
  await shortLease.put('/registry/masterleases/10.0.0.1').value('endpoint').exec();
  snapB = await takeBackup({ config, store, log, cause: { source: 'manual' } });

  // Phase 3: the prod namespace is updated, more churn, deletes.
  await put(c, '/registry/namespaces/prod', 'prod-v2');
  prodValue = Buffer.from(`prod-v3-${randomBytes(8).toString('hex')}`);
  at.prodLastUpdate = await put(c, '/registry/namespaces/prod', prodValue);
  await puts(c, 400, (i) => `/registry/deployments/shop/d${i % 150}`, 'p3');
  for (let i = 0; i < 120; i++)
    at.deletes = Number(
      (
        await c
          .delete()
          .key(`/registry/configmaps/default/cm-0${200 + i}`)
          .exec()
      ).header.revision,
    );
  await pause(c);

  // Phase 4: the namespace's contents go, then the namespace; life goes on afterwards.
  await c.delete().prefix('/registry/secrets/prod/').exec();
  at.prodDelete = Number((await c.delete().key('/registry/namespaces/prod').exec()).header.revision);
  finalRevision = await puts(c, 300, (i) => `/registry/events/default/e${i}`, 'p4');
  await live.until(finalRevision);
  await live.stop();
  events = live.events;
  lease.release();
  segments = await publishSegments(store, events, {
    config,
    chain: { follows: snapA.id, startRevision: snapA.etcd.revision + 1 },
    perSegment: 250,
  });
});

after(async () => {
  await shortLease?.revoke().catch(() => undefined);
  await source?.stop();
  await work?.remove();
});

type Kv = { value: string; create: string; mod: string; version: string };

async function stateOf(client: Etcd3, revision?: number): Promise<{ revision: number; kvs: Map<string, Kv> }> {
  const r = await client.kv.range({
    key: Buffer.from([0]),
    range_end: Buffer.from([0]),
    ...(revision === undefined ? {} : { revision }),
  });
  const kvs = new Map<string, Kv>();
  for (const kv of r.kvs) {
    kvs.set(kv.key.toString(), {
      value: kv.value.toString('base64'),
      create: kv.create_revision,
      mod: kv.mod_revision,
      version: kv.version,
    });
  }
  return { revision: Number(r.header.revision), kvs };
}

/** Boots a real etcd on the restored data dir and checks it against the source at `revision`. */
async function assertRestoredAs(dataDir: string, revision: number, label: string): Promise<void> {
  const restored = await startEtcd({ dataDir, name: 'default' });
  try {
    const got = await stateOf(restored.client);
    const want = await stateOf(source.client, revision);
    assert.equal(got.revision, revision, `${label}: the restored etcd is at the target revision`);
    assert.equal(got.kvs.size, want.kvs.size, `${label}: as many keys as the source had at ${revision}`);
    for (const [key, kv] of want.kvs) assert.deepEqual(got.kvs.get(key), kv, `${label}: ${key}`);
  } finally {
    await restored.stop();
  }
}

async function restoreTo(
  target: TargetSpec,
  label: string,
  into = join(work.path, `restored-${label}`),
  on: { store: Store; read?: LogReadOptions } = { store },
) {
  const state = await readLogState(on.store, CLUSTER);
  const resolved = await resolveTarget(on.store, state, target, on.read ?? {});
  const peer = `http://127.0.0.1:${await freePort()}`;
  const report = await replayToRevision({
    store: on.store,
    plan: resolved.plan,
    dataDir: into,
    etcdctl: 'etcdctl',
    member: { name: 'default', initialAdvertisePeerUrls: peer, initialClusterToken: `pitr-${label}` },
    log,
    ...(on.read ?? {}),
  });
  return { report, resolved, dataDir: into };
}

describe('point-in-time restore', () => {
  it('the log spans several segments, with multi-event revisions', () => {
    assert.ok(events.length > 2000, `${events.length} events`);
    assert.ok(segments.length >= 8, `${segments.length} segments`);
    const perRevision = new Map<number, number>();
    for (const e of events) perRevision.set(e.revision, (perRevision.get(e.revision) ?? 0) + 1);
    assert.equal(perRevision.get(at.prefixDelete), 10, 'the prefix delete is ten events at one revision');
    assert.equal(perRevision.get(at.multiPut), 8);
  });

  it('restores a dozen revisions exactly: every key, value, create/mod revision and version', async () => {
    const a = snapA.etcd.revision;
    const targets: [string, number][] = [
      ['snapshot A itself', a],
      ['first event', a + 1],
      ['inside phase 1', a + 137],
      ['end of phase 1', at.phase1],
      ['a multi-put transaction', at.multiPut],
      ['just before the prefix delete', at.prefixDelete - 1],
      ['the prefix delete', at.prefixDelete],
      ['after the leased puts', at.leased],
      ['snapshot B', snapB.etcd.revision],
      ['snapshot B + 3', snapB.etcd.revision + 3],
      ['a segment boundary', (segments[5] as DeltaManifest).lastRevision],
      ['the next segment', (segments[5] as DeltaManifest).lastRevision + 1],
      ['after the deletes', at.deletes],
      ['the newest revision', finalRevision],
    ];
    // Three at a time: each restore waits mostly on its scratch etcd's fsyncs, and the suite has a time budget.
    await mapLimit(targets, PARALLEL_RESTORES, async ([label, revision]) => {
      const { report, dataDir } = await restoreTo({ toRevision: revision }, label.replace(/\W+/g, '-'));
      assert.equal(report.revision, revision, label);
      await assertRestoredAs(dataDir, revision, label);
      if (revision >= snapB.etcd.revision) {
        assert.equal(report.snapshot.id, snapB.id, `${label}: replays from the newest snapshot at or below`);
      } else {
        assert.equal(report.snapshot.id, snapA.id, label);
      }
      await rm(dataDir, { recursive: true, force: true });
    });
  });

  it('--to-time restores the state as of an instant between changes', async () => {
    await mapLimit([...pauses.entries()], PARALLEL_RESTORES, async ([i, p]) => {
      const { report, dataDir } = await restoreTo({ toTime: p.when }, `time-${i}`);
      assert.equal(report.revision, p.revision, `pause ${i} at ${p.when.toISOString()}`);
      await assertRestoredAs(dataDir, p.revision, `pause ${i}`);
      await rm(dataDir, { recursive: true, force: true });
    });
  });

  it('--before namespaces/prod brings the deleted namespace back with its last value', async () => {
    const { report, resolved, dataDir } = await restoreTo({ before: 'namespaces/prod' }, 'before-prod');
    assert.equal(report.revision, at.prodDelete - 1);
    assert.match(resolved.reason, /just before the delete of \/registry\/namespaces\/prod/);
    const restored = await startEtcd({ dataDir, name: 'default' });
    try {
      const value = await restored.client.get('/registry/namespaces/prod').buffer();
      assert.deepEqual(value, prodValue);
    } finally {
      await restored.stop();
    }
    await assertRestoredAs(dataDir, report.revision, 'before prod');
    const history = await keyHistory(store, await readLogState(store, CLUSTER), '/registry/namespaces/prod', {
      prefix: false,
    });
    assert.deepEqual(
      history.map((h) => [h.type, h.revision, h.size]),
      [
        ['put', at.prodLastUpdate - 1, 7],
        ['put', at.prodLastUpdate, prodValue.length],
        ['delete', at.prodDelete, 0],
      ],
    );
  });

  it("keeps the snapshot's leases alive while replaying: an expiry would add a revision the log does not hold", async () => {
    const target = snapB.etcd.revision + 50;
    const state = await readLogState(store, CLUSTER);
    const { plan } = await resolveTarget(store, state, { toRevision: target });
    assert.equal(plan.sources[0]?.snapshot.id, snapB.id);
    const report = await replayToRevision({
      store,
      plan,
      dataDir: join(work.path, 'restored-leases'),
      etcdctl: 'etcdctl',
      log,
      // Longer than the 5 s lease: without keep-alives the scratch etcd would revoke it here.
      onScratchReady: () => new Promise((r) => setTimeout(r, 7_000)),
    });
    assert.equal(report.revision, target);
    assert.equal(report.revisions, 50);
  });

  it('a lease that expires before the scratch etcd holds it: the scratch etcd starts again from the same file', async () => {
    // Snapshot B holds a 5 s lease. On a loaded machine the first keep-alive can come after it
    // expired (its revocation is a revision the log does not hold); here that is forced on the
    // first boot by waiting past the TTL before the leases are held.
    const target = snapB.etcd.revision + 30;
    const state = await readLogState(store, CLUSTER);
    const { plan } = await resolveTarget(store, state, { toRevision: target });
    assert.equal(plan.sources[0]?.snapshot.id, snapB.id);
    const dataDir = join(work.path, 'restored-lease-expired');
    const report = await replayToRevision({
      store,
      plan,
      dataDir,
      etcdctl: 'etcdctl',
      log,
      beforeHoldingLeases: (boot) => (boot === 1 ? new Promise((r) => setTimeout(r, 7_000)) : Promise.resolve()),
    });
    assert.ok(report.scratchBoots >= 2, `${report.scratchBoots} boots`);
    assert.equal(report.revision, target);
    await assertRestoredAs(dataDir, target, 'after a second boot');
  });

  it('refuses targets out of coverage, in a gap, or before the oldest snapshot, naming restorable points', async () => {
    await assert.rejects(
      restoreTo({ toRevision: snapA.etcd.revision - 5 }, 'too-old'),
      (err: unknown) =>
        err instanceof TargetError &&
        /before the oldest kept snapshot; the oldest restorable point is revision \d+ \(snapshot/.test(err.message),
    );
    await assert.rejects(
      restoreTo({ toRevision: finalRevision + 1 }, 'too-new'),
      new RegExp(`past what the log holds; the newest restorable point is revision ${finalRevision}`),
    );
    await assert.rejects(
      restoreTo({ toTime: new Date(Date.now() + 60_000) }, 'future'),
      new RegExp(`after the newest event the log holds, revision ${finalRevision}.*--to-revision ${finalRevision}`),
    );
    // A copy of the store that lost a segment in the middle: a gap.
    const gapped = join(work.path, 'store-gap');
    await cp(storeDir, gapped, { recursive: true });
    const lost = segments[3] as DeltaManifest;
    await rm(
      join(
        gapped,
        `${CLUSTER}/deltas/${lost.key
          .split('/')
          .pop()
          ?.replace(/\.events.*$/, '')}.manifest.json`,
      ),
    );
    const inGap = lost.firstRevision + 3;
    const gapStore = new FileStore(gapped);
    await assert.rejects(
      restoreTo({ toRevision: inGap }, 'in-gap', undefined, { store: gapStore }),
      new RegExp(
        `revision ${inGap} cannot be restored: the log has a gap: revisions ${lost.firstRevision}\\.\\.${snapB.etcd.revision - 1} are not in it; the nearest restorable points are revision ${lost.firstRevision - 1} .* and revision ${snapB.etcd.revision} \\(snapshot ${snapB.id}`,
      ),
    );
    assert.deepEqual(await readdir(work.path).then((d) => d.filter((n) => n.startsWith('restored-in-gap'))), []);
  });

  it('a corrupted segment fails the restore naming it and leaves no data dir', async () => {
    const corrupt = join(work.path, 'store-corrupt');
    await cp(storeDir, corrupt, { recursive: true });
    const victim = segments[2] as DeltaManifest;
    const file = join(corrupt, victim.key);
    const size = (await stat(file)).size;
    const h = await open(file, 'r+');
    try {
      const b = Buffer.alloc(1);
      await h.read(b, 0, 1, Math.floor(size / 2));
      b[0] = (b[0] as number) ^ 0x5a;
      await h.write(b, 0, 1, Math.floor(size / 2));
    } finally {
      await h.close();
    }
    const parent = join(work.path, 'corrupt-target');
    const dataDir = join(parent, 'etcd');
    await assert.rejects(
      restoreTo({ toRevision: victim.lastRevision + 5 }, 'corrupt', dataDir, { store: new FileStore(corrupt) }),
      (err: unknown) => {
        assert.match(String(err), new RegExp(`delta segment r0*${victim.firstRevision}-r0*${victim.lastRevision}`));
        assert.match(String(err), /corrupt|does not match its manifest|not a (JSON event line|delta event)/);
        return true;
      },
    );
    assert.deepEqual(await readdir(parent), [], 'no data dir and no temporary sibling left');
  });

  it('replays encrypted and compressed segments: age + zstd on file, AES-GCM + gzip on s3', async () => {
    const target = at.deletes;
    // age + zstd on a file store
    const ageKey = join(work.path, 'age.txt');
    await run('age-keygen', ['-o', ageKey]);
    const recipient = (await run('age-keygen', ['-y', ageKey])).stdout.trim();
    const ageDir = join(work.path, 'store-age');
    await cp(join(storeDir, CLUSTER, 'snapshots'), join(ageDir, CLUSTER, 'snapshots'), { recursive: true });
    const ageStore = new FileStore(ageDir);
    const ageConfig = loadConfig({
      env: {},
      flags: { cluster: CLUSTER, store: `file://${ageDir}`, 'age-recipients': recipient, compression: 'zstd' },
    });
    const ageSegments = await publishSegments(ageStore, events, {
      config: ageConfig,
      chain: { follows: snapA.id, startRevision: snapA.etcd.revision + 1 },
      perSegment: 400,
    });
    assert.deepEqual(ageSegments[0]?.transforms, ['zstd', 'age']);
    await assert.rejects(
      restoreTo({ toRevision: target }, 'age-no-identity', undefined, { store: ageStore }),
      /age-encrypted to .*--identity/,
    );
    const identities = await loadIdentities([ageKey]);
    const viaAge = await restoreTo({ toRevision: target }, 'age', undefined, {
      store: ageStore,
      read: { identities },
    });
    await assertRestoredAs(viaAge.dataDir, target, 'age + zstd');

    // AES-GCM + gzip on s3
    const s3: S3rverServer = await startS3rver({ buckets: ['pitr'] });
    try {
      const keyFile = join(work.path, 'aes.key');
      await writeFile(keyFile, `${randomBytes(32).toString('base64')}\n`);
      const s3Config = loadConfig({
        env: {},
        flags: {
          cluster: CLUSTER,
          store: 's3://pitr/backups',
          's3-endpoint': s3.endpoint,
          's3-access-key-id': S3RVER_CREDENTIALS.accessKeyId,
          's3-secret-access-key': S3RVER_CREDENTIALS.secretAccessKey,
          's3-region': 'us-east-1',
          's3-force-path-style': true,
          'encryption-key-file': keyFile,
          compression: 'gzip',
        },
      });
      const s3Store = await openStore(s3Config);
      try {
        for (const o of await store.list(`${CLUSTER}/snapshots/`)) {
          const { body } = await store.get(o.key);
          await s3Store.put(o.key, body);
        }
        const s3Segments = await publishSegments(s3Store, events, {
          config: s3Config,
          chain: { follows: snapA.id, startRevision: snapA.etcd.revision + 1 },
          perSegment: 400,
        });
        assert.deepEqual(s3Segments[0]?.transforms, ['gzip', 'encrypt-aes-256-gcm']);
        const viaS3 = await restoreTo({ toRevision: target }, 's3', undefined, {
          store: s3Store,
          read: { keys: await loadKeyRing(s3Config.encryption) },
        });
        await assertRestoredAs(viaS3.dataDir, target, 'AES-GCM + gzip on s3');
      } finally {
        await s3Store.close();
      }
    } finally {
      await s3.stop();
    }
  });

  it('from the CLI: history finds the point, restore --before-revision replays to it, list shows the coverage', async () => {
    const flags = ['--store', `file://${storeDir}`, '--cluster', CLUSTER];
    const history = await runCliOk(['history', 'namespaces/prod', ...flags]);
    const rows = history.stdout.split('\n').filter((l) => /^\d+\s/.test(l));
    assert.deepEqual(
      rows.map((l) => l.split(/\s+/).slice(0, 3).join(' ')).map((l) => l.replace(/ \S+Z /, ' T ')),
      [`${at.prodLastUpdate - 1} T update`, `${at.prodLastUpdate} T update`, `${at.prodDelete} T delete`],
    );
    assert.match(history.stdout, /restore --before namespaces\/prod --data-dir DIR/);
    const json = JSON.parse((await runCliOk(['history', '/registry/secrets/prod/', '--json', ...flags])).stdout) as {
      kind: string;
    }[];
    assert.equal(json.length, 20, 'every secret of prod was deleted once in the log');
    assert.ok(json.every((c) => c.kind === 'delete'));

    const dataDir = join(work.path, 'cli-restored');
    const peer = `http://127.0.0.1:${await freePort()}`;
    const restored = await runCliOk(
      [
        'restore',
        '--before-revision',
        String(at.prodDelete),
        '--data-dir',
        dataDir,
        '--name',
        'default',
        '--initial-advertise-peer-urls',
        peer,
        ...flags,
      ],
      { timeoutMs: 180_000 },
    );
    assert.match(restored.stdout, new RegExp(`restored revision ${at.prodDelete - 1} into ${dataDir}`));
    assert.match(restored.stdout, /delta segments \(each segment's SHA-256s verified\)/);
    assert.match(restored.stdout, /next steps:/);
    await assertRestoredAs(dataDir, at.prodDelete - 1, 'CLI --before-revision');

    const list = await runCliOk(['list', ...flags]);
    assert.match(
      list.stdout,
      new RegExp(
        `${snapA.id}\\s+${snapA.etcd.revision + 1}\\s+${finalRevision}\\s+\\S+Z\\s+${segments.length}\\s+${snapA.etcd.revision}\\.\\.${finalRevision}`,
      ),
    );

    // Scripts keep their array; the coverage comes as an object only when asked for.
    assert.ok(Array.isArray(JSON.parse((await runCliOk(['list', '--json', ...flags])).stdout)));
    const covered = JSON.parse((await runCliOk(['list', '--json', '--include-deltas', ...flags])).stdout) as {
      snapshots: { id: string }[];
      deltas: DeltaCoverage;
    };
    assert.ok(covered.snapshots.some((m) => m.id === snapA.id));
    const chain = covered.deltas.chains.find((c) => c.follows === snapA.id);
    assert.deepEqual(chain && { ...chain, newestEventAt: typeof chain.newestEventAt }, {
      follows: snapA.id,
      startRevision: snapA.etcd.revision + 1,
      endRevision: finalRevision,
      newestEventAt: 'string',
      segments: segments.length,
      restorable: { fromRevision: snapA.etcd.revision, toRevision: finalRevision },
    });
    assert.deepEqual(covered.deltas.problems, []);

    const both = await runCli(['restore', 'latest', '--to-revision', '5', '--data-dir', dataDir, ...flags]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /a snapshot id or a point-in-time flag, not both/);
    const local = await runCli(['restore', '--to-time', '2026-12-01 10:00', '--data-dir', dataDir, ...flags]);
    assert.equal(local.code, 2);
    assert.match(local.stderr, /ISO 8601 time with its zone/);
    const out = await runCli([
      'restore',
      '--to-revision',
      String(finalRevision + 10),
      '--data-dir',
      join(work.path, 'nope'),
      ...flags,
    ]);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /past what the log holds; the newest restorable point is revision/);
  });

  // Last: it adds a snapshot and a chain written by the real writer after everything above.
  it('restores from a chain the real writer wrote, joined to the one before it', async () => {
    const redis = await startRedis();
    try {
      const writerConfig = configSchema.parse({
        cluster: CLUSTER,
        etcd: { endpoints: [source.endpoint] },
        store: { url: `file://${storeDir}` },
        redis: { url: redis.url, prefix: 'eab-pitr' },
        queue: { maxInterval: 0, lockDuration: 2_000, shutdownGrace: 5_000, backoff: 200 },
        delta: { enabled: true, flushInterval: 300, maxSegmentBytes: 64 * 1024 },
      });
      const snapC = await takeBackup({ config: writerConfig, store, log, cause: { source: 'manual' } });
      const writer = startDeltaWriter({ config: writerConfig, store, log });
      let end: number;
      try {
        await waitFor('the writer to lead', () => Promise.resolve(writer.leader || undefined));
        end = await writeLoad(source.client, { ops: 600, prefix: '/registry/writer' });
        end = Number((await source.client.get('/x').exec()).header.revision);
        await waitFor(
          `the writer's chain to reach ${end}`,
          async () => {
            const state = await readLogState(store, CLUSTER);
            return (state.runs.at(-1)?.endRevision ?? 0) >= end || undefined;
          },
          60_000,
        );
      } finally {
        await writer.close();
      }
      const state = await readLogState(store, CLUSTER);
      const written = state.chains.flatMap((c) => c.segments).filter((m) => m.firstRevision > finalRevision);
      assert.ok(written.length > 1, `the writer wrote ${written.length} segments after revision ${finalRevision}`);
      assert.equal(state.runs.length, 1, "the writer's chain continues the test's own: one run");
      for (const target of [snapC.etcd.revision + 77, end]) {
        const { report, dataDir } = await restoreTo({ toRevision: target }, `writer-${target}`);
        assert.equal(report.snapshot.id, snapC.id);
        await assertRestoredAs(dataDir, target, `writer chain, revision ${target}`);
      }
      // Across the join: from snapshot B through the test's chain into the writer's.
      const across = await replayToRevision({
        store,
        plan: {
          target: snapC.etcd.revision + 20,
          sources: planRestore(snapC.etcd.revision + 20, [snapB], state.chains).sources,
        },
        dataDir: join(work.path, 'restored-across'),
        etcdctl: 'etcdctl',
        log,
      });
      assert.equal(across.snapshot.id, snapB.id);
      await assertRestoredAs(across.dataDir, snapC.etcd.revision + 20, 'across two chains');
    } finally {
      await redis.stop();
    }
  });
});
