import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { configSchema, type Config } from '../../../core/config/index.js';
import { createLogger } from '../../../core/logger.js';
import { takeBackup } from '../../../worker/backup.js';
import { readDeltaCatalog } from '../../../worker/delta/catalog.js';
import { replayVerdict } from '../../../worker/delta/drill-replay.js';
import { buildChains } from '../../../worker/delta/segment.js';
import { segmentContent, writeSegment } from '../../../worker/delta/segment-write.js';
import { startDeltaWriter } from '../../../worker/delta/writer.js';
import { readDrillRecord, runDrill, type DrillRecord } from '../../../worker/drill.js';
import { drillAfterSnapshot } from '../../../worker/drill-hook.js';
import { drillRunnerFor } from '../../../worker/drill-runner.js';
import type { DeltaManifest } from '../../../worker/delta/segment.js';
import type { Manifest } from '../../../worker/manifest.js';
import { openStore } from '../../../worker/stores/open.js';
import type { Store } from '../../../worker/stores/store.js';
import { readSegmentEvents } from '../../support/delta.js';
import { startEtcd, type EtcdServer } from '../../support/etcd.js';
import { waitFor } from '../../support/ports.js';
import { startRedis, type RedisServer } from '../../support/redis.js';
import { tempDir } from '../../support/tmp.js';

const log = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'fatal' });
const cluster = 'drill-replay';
let etcd: EtcdServer;
let redis: RedisServer;
let work: { path: string; remove: () => Promise<void> };
/** The chain every test drills: snapshot s1, the writer's log over a load, snapshot s2. */
let fixture: {
  config: Config;
  store: Store;
  s1: Manifest;
  s2: Manifest;
  target: number;
  segments: DeltaManifest[];
};

before(async () => {
  [etcd, redis, work] = await Promise.all([startEtcd(), startRedis(), tempDir('drill-replay')]);
  fixture = await buildChain();
});

after(async () => {
  await fixture?.store.close();
  await Promise.allSettled([etcd?.stop(), redis?.stop()]);
  await work?.remove();
});

/**
 * Puts, updates, deletes, multi-key transactions and leased puts, as a cluster writes them (Events and
 * endpoint leases carry leases). HashKV covers lease ids and replay drops leases, so the leased puts
 * make the check fall back to its lease-blind key-by-key comparison.
 */
async function load(ops: number, lease: ReturnType<EtcdServer['client']['lease']>): Promise<void> {
  for (let i = 0; i < ops; i++) {
    if (i % 25 === 7) {
      await lease.put(`/registry/events/default/e${i}`).value(`event-${i}`);
      continue;
    }
    const key = `/registry/replay/k${i % 53}`;
    const value = `${i}-${'v'.repeat(400)}`;
    if (i % 10 === 3) await etcd.client.delete().key(key);
    else if (i % 10 === 5) {
      await etcd.client
        .if(key, 'Version', '>', -1)
        .then(
          etcd.client.put(`/registry/replay/t${i % 7}a`).value(value),
          etcd.client.put(`/registry/replay/t${i % 7}b`).value(value),
          etcd.client.delete().key(`/registry/replay/k${(i + 1) % 53}`),
        )
        .commit();
    } else await etcd.client.put(key).value(value);
  }
}

async function drill(store: Store, manifest: Manifest): Promise<DrillRecord> {
  const scratchDir = join(work.path, 'scratch');
  const record = await runDrill({
    store,
    manifest,
    etcdctl: 'etcdctl',
    etcd: 'etcd',
    scratchDir,
    startTimeoutMs: 60_000,
    freeSpaceMargin: 0,
    log,
    replayLog: true,
  });
  assert.deepEqual(await readdir(scratchDir), [], 'the scratch dir is emptied');
  return record;
}

async function buildChain(): Promise<typeof fixture> {
  const config = configSchema.parse({
    cluster,
    etcd: { endpoints: [etcd.endpoint] },
    store: { url: `file://${join(work.path, 'store')}` },
    redis: { url: redis.url, prefix: 'eab-drill-replay' },
    queue: { maxInterval: 0, lockDuration: 2_000, shutdownGrace: 5_000 },
    delta: { enabled: true, flushInterval: 300, maxSegmentBytes: 64 * 1024 },
  });
  const store = await openStore(config);
  const s1 = await takeBackup({ config, store, log, cause: { source: 'manual' } });
  const writer = startDeltaWriter({ config, store, log });
  try {
    await waitFor('the writer to lead', () => Promise.resolve(writer.leader || undefined));
    const lease = etcd.client.lease(600);
    await load(600, lease);
    const s2 = await takeBackup({ config, store, log, cause: { source: 'manual' } });
    lease.release(); // its keys stay until the TTL: the snapshot holds them with their lease
    assert.ok(s2.hashKV, 'the later snapshot records HashKV');
    const target = s2.hashKV.revision;
    const segments = await waitFor(
      `the log to reach revision ${target}`,
      async () => {
        const chain = buildChains((await readDeltaCatalog(store, cluster)).manifests).chains.find(
          (c) => c.follows === s1.id,
        );
        return chain && chain.endRevision >= target ? chain.segments : undefined;
      },
      60_000,
      100,
    );
    assert.ok(segments.filter((m) => m.firstRevision <= target).length >= 3, 'several segments to replay');
    return { config, store, s1, s2, target, segments };
  } finally {
    await writer.close();
  }
}

// Declared before the test that alters a segment: it needs the log as the writer stored it.
it('drill.replayLog: true: an after-snapshot drill replays the log too and records the delta-replay check', async () => {
  const { config, store, s1, s2 } = fixture;
  const scratchDir = join(work.path, 'hook-scratch');
  const drillConfig = {
    ...config,
    drill: { ...config.drill, afterSnapshot: 1, replayLog: true, scratchDir, freeSpaceMargin: 0 },
  };
  await drillAfterSnapshot({ config: drillConfig, store })(s2, log);
  const record = await readDrillRecord(store, cluster, s2.id);
  assert.ok(record, 'the hook wrote the drill record');
  const check = record.checks.find((c) => c.name === 'delta-replay');
  assert.equal(
    check?.ok,
    true,
    check?.detail ?? `no delta-replay check in ${record.checks.map((c) => c.name).join(', ')}`,
  );
  assert.match(check?.detail ?? '', new RegExp(`snapshot ${s1.id} .* replayed to revision`));
  assert.equal(record.ok, true, record.failure);
  assert.deepEqual(await readdir(scratchDir), [], 'the scratch dir is emptied');
});

it("the drill command's --replay-log with drill.executor job is still refused with what to change", () => {
  const config = configSchema.parse({
    cluster,
    drill: { executor: 'job' },
    executor: { image: 'registry.example/eab:1' },
  });
  assert.throws(
    () => drillRunnerFor(config, fixture.store, { replayLog: true }),
    /--replay-log runs only with the local drill executor: add --drill-executor local/,
  );
});

it('drill --replay-log: the writer-produced log replayed from an older snapshot gives the later snapshot HashKV; altered events (with a matching manifest) fail it', async () => {
  const { config, store, s1, s2, target, segments } = fixture;
  const passed = await drill(store, s2);
  const check = passed.checks.find((c) => c.name === 'delta-replay');
  assert.equal(check?.ok, true, check?.detail);
  assert.match(
    check?.detail ?? '',
    new RegExp(
      `snapshot ${s1.id} .* replayed to revision ${target}: every key's value, create/mod revision and version equal to snapshot ${s2.id}'s .*HashKV differs only by the leases of \\d+ events`,
    ),
  );
  assert.equal(passed.ok, true, passed.failure);

  // One put's value altered and the segment published again through the real writer path:
  // its manifest's SHA-256s match the new body, so only the replay's comparison can tell.
  const victim = segments.find((m) => m.firstRevision > s1.etcd.revision + 1 && m.lastRevision < target);
  assert.ok(victim, 'a segment inside the replayed range');
  const events = await readSegmentEvents(store, victim);
  // A leased event's key is put once and never again, so the altered value is still the state at the
  // target: the lease-blind comparison sees the state there, not the history (HashKV sees both).
  const i = events.findIndex((e) => e.type === 'put' && e.key.toString().startsWith('/registry/events/'));
  const put = events[i];
  assert.ok(put);
  events[i] = { ...put, value: Buffer.from(`${put.value.toString()}!`) };
  await writeSegment(store, { config, content: segmentContent(events), chain: victim.chain, etcd: victim.etcd });

  const failed = await drill(store, s2);
  const bad = failed.checks.find((c) => c.name === 'delta-replay');
  assert.equal(bad?.ok, false);
  assert.match(
    bad?.detail ?? '',
    /HashKV differs \(\d+ replayed events carried a lease.*key by key the state differs too.*the log does not reproduce/,
  );
  assert.equal(failed.ok, false);
  assert.match(failed.failure ?? '', /^delta-replay: /);
  for (const name of ['restore', 'hashkv', 'key-counts']) {
    assert.equal(failed.checks.find((c) => c.name === name)?.ok, true, `${name} of the snapshot itself still passes`);
  }
});

it('replayVerdict: HashKV decides when it matches or no lease was dropped; otherwise the lease-blind content', () => {
  const digest = (sha256: string, keys = 10) => ({ revision: 50, keys, sha256 });
  assert.deepEqual(replayVerdict({ hashMatches: true, leasesDropped: 0 }), { ok: true, by: 'hashkv' });
  assert.deepEqual(replayVerdict({ hashMatches: true, leasesDropped: 3 }), { ok: true, by: 'hashkv' });
  // No lease dropped: nothing but a wrong log explains a different HashKV, whatever the content says.
  const same = { replayed: digest('a'), drilled: digest('a') };
  assert.deepEqual(replayVerdict({ hashMatches: false, leasesDropped: 0, ...same }), { ok: false, by: 'hashkv' });
  assert.deepEqual(replayVerdict({ hashMatches: false, leasesDropped: 2 }), { ok: false, by: 'hashkv' });
  assert.deepEqual(replayVerdict({ hashMatches: false, leasesDropped: 2, ...same }), { ok: true, by: 'content' });
  for (const drilled of [digest('b'), digest('a', 11), { ...digest('a'), revision: 51 }]) {
    assert.deepEqual(replayVerdict({ hashMatches: false, leasesDropped: 2, replayed: digest('a'), drilled }), {
      ok: false,
      by: 'content',
    });
  }
});
