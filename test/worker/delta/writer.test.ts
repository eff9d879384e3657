import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { configSchema, type Config, type ConfigInput } from '../../../core/config/index.js';
import { createLogger } from '../../../core/logger.js';
import { createMetrics, type Metrics } from '../../../core/metrics.js';
import { takeBackup } from '../../../worker/backup.js';
import { listSnapshots } from '../../../worker/catalog.js';
import { readDeltaCatalog } from '../../../worker/delta/catalog.js';
import { buildChains, segmentManifestKey, type DeltaChain } from '../../../worker/delta/segment.js';
import { startDeltaWriter, type DeltaWriter } from '../../../worker/delta/writer.js';
import { startWorkerPool } from '../../../worker/pool.js';
import { openStore } from '../../../worker/stores/open.js';
import type { Store } from '../../../worker/stores/store.js';
import { CountingStore } from '../../support/counting-store.js';
import { comparable, currentRevision, readSegmentEvents, sourceEvents, writeLoad } from '../../support/delta.js';
import { startEtcd, type EtcdServer } from '../../support/etcd.js';
import { waitFor } from '../../support/ports.js';
import { startRedis, type RedisServer } from '../../support/redis.js';
import { startS3rver, S3RVER_CREDENTIALS, type S3rverServer } from '../../support/s3rver.js';
import { tempDir } from '../../support/tmp.js';

const run = promisify(execFile);
const log = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'fatal' });
const KIB = 1024;

let etcd: EtcdServer;
let redis: RedisServer;
let s3: S3rverServer;
let work: { path: string; remove: () => Promise<void> };
let aesKeyFile: string;
let ageKeyFile: string;
let ageRecipient: string;

before(async () => {
  [etcd, redis, s3, work] = await Promise.all([
    startEtcd(),
    startRedis(),
    startS3rver({ buckets: ['deltas'] }),
    tempDir('delta-writer'),
  ]);
  aesKeyFile = join(work.path, 'aes.key');
  await writeFile(aesKeyFile, `${randomBytes(32).toString('base64')}\n`);
  ageKeyFile = join(work.path, 'age.txt');
  await run('age-keygen', ['-o', ageKeyFile]);
  ageRecipient = (await run('age-keygen', ['-y', ageKeyFile])).stdout.trim();
});

after(async () => {
  await Promise.allSettled([etcd?.stop(), redis?.stop(), s3?.stop()]);
  await work?.remove();
});

function configFor(cluster: string, extra: Partial<ConfigInput> & { s3?: boolean } = {}): Config {
  const { s3: onS3, ...rest } = extra;
  return configSchema.parse({
    cluster,
    etcd: { endpoints: [etcd.endpoint] },
    store: onS3
      ? {
          url: 's3://deltas/backups',
          s3: {
            endpoint: s3.endpoint,
            region: 'us-east-1',
            forcePathStyle: true,
            ...S3RVER_CREDENTIALS,
          },
        }
      : { url: `file://${join(work.path, 'store')}` },
    redis: { url: redis.url, prefix: `eab-${cluster}` },
    queue: { maxInterval: 0, lockDuration: 2_000, shutdownGrace: 5_000, backoff: 200 },
    delta: { enabled: true, flushInterval: 300, maxSegmentBytes: 64 * KIB },
    ...rest,
  });
}

async function chainsOf(store: Store, cluster: string): Promise<ReturnType<typeof buildChains>> {
  return buildChains((await readDeltaCatalog(store, cluster)).manifests);
}

/** Waits until the newest chain holds every revision up to etcd's current one. */
async function caughtUp(store: Store, cluster: string, timeoutMs = 90_000): Promise<DeltaChain[]> {
  const end = await currentRevision(etcd.client);
  return waitFor(
    `the delta log of ${cluster} to reach revision ${end}`,
    async () => {
      const { chains } = await chainsOf(store, cluster);
      const newest = chains[chains.length - 1];
      return newest && newest.endRevision >= end ? chains : undefined;
    },
    timeoutMs,
    100,
  );
}

/** The chain's events, in order, checked against each segment's range (whole, non-empty revisions). */
async function chainEvents(store: Store, chain: DeltaChain, keys = {}): Promise<string[]> {
  const out: string[] = [];
  for (const m of chain.segments) {
    const events = await readSegmentEvents(store, m, keys);
    assert.ok(events.length > 0, `${m.key} is empty`);
    assert.equal(events[0]?.revision, m.firstRevision, `${m.key} starts at its first revision`);
    assert.equal(events[events.length - 1]?.revision, m.lastRevision, `${m.key} ends at its last revision`);
    assert.equal(events.length, m.eventCount);
    out.push(...events.map(comparable));
  }
  return out;
}

const counter = async (metrics: Metrics, name: keyof Metrics, labels: Record<string, string>) => {
  const metric = metrics[name] as { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> };
  const { values } = await metric.get();
  return values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))?.value ?? 0;
};

describe('delta-log writer (real etcd, Redis, stores)', () => {
  it('thousands of puts, updates, deletes and transactions give one contiguous chain holding exactly the source events; a restarted writer resumes without gap or duplicate', async () => {
    const cluster = 'w-exact';
    const config = configFor(cluster, {
      snapshot: { compression: 'zstd' },
      encryption: { keyFile: aesKeyFile },
    });
    const store = await openStore(config);
    const metrics = createMetrics({ defaultMetrics: false });
    let writer: DeltaWriter | undefined;
    try {
      const base = await takeBackup({ config, store, log, cause: { source: 'manual' } });
      writer = startDeltaWriter({ config, store, log, metrics });
      await waitFor('the writer to lead', () => Promise.resolve(writer?.leader || undefined));
      await writeLoad(etcd.client, { ops: 2500, prefix: '/registry/exact' });
      await caughtUp(store, cluster);
      await writer.close();
      writer = undefined;

      // While no writer runs, etcd goes on; the next writer resumes after the last segment,
      // reading only the newest segment manifest: the others are known by their names.
      const logged = (await readDeltaCatalog(store, cluster)).manifests;
      const newestLogged = logged[logged.length - 1];
      assert.ok(newestLogged && logged.length >= 5, `several segments to resume after (${logged.length})`);
      await writeLoad(etcd.client, { ops: 500, prefix: '/registry/exact2' });
      const counting = new CountingStore(store);
      writer = startDeltaWriter({ config, store: counting, log, metrics });
      const chains = await caughtUp(store, cluster);
      await writer.close();
      writer = undefined;
      assert.deepEqual(
        counting.gets.filter((k) => k.startsWith(`${cluster}/deltas/`)),
        [segmentManifestKey(cluster, newestLogged.firstRevision, newestLogged.lastRevision)],
        `one manifest read to resume, not all ${logged.length}`,
      );

      const { problems } = await chainsOf(store, cluster);
      assert.deepEqual(problems, [], 'no gap, no overlap');
      assert.equal(chains.length, 1, 'one chain');
      const chain = chains[0] as DeltaChain;
      assert.equal(chain.follows, base.id);
      assert.equal(chain.startRevision, base.etcd.revision + 1);
      assert.equal(chain.fromSnapshot, true);
      assert.ok(chain.segments.length >= 5, `several flushes (${chain.segments.length} segments)`);
      assert.ok(chain.segments.every((m) => m.encryption && m.transforms.join() === 'zstd,encrypt-aes-256-gcm'));

      const stored = await chainEvents(store, chain, { encryption: config.encryption });
      const source = await sourceEvents(etcd.client, chain.startRevision, chain.endRevision);
      assert.equal(stored.length, source.length, 'as many events as the source');
      assert.deepEqual(stored, source);
      assert.ok(
        stored.some((e) => e.includes(' delete ')),
        'deletes are kept',
      );
      assert.equal(await counter(metrics, 'deltaSegments', { cluster }), chain.segments.length);
      assert.equal(await counter(metrics, 'deltaEvents', { cluster }), stored.length);
      assert.equal(await counter(metrics, 'deltaGaps', { cluster }), 0);
    } finally {
      await writer?.close();
      await store.close();
    }
  });

  it('compaction while the writer is stopped: the gap is recorded, a full snapshot follows and a new chain starts after it (s3, zstd + age)', async () => {
    const cluster = 'w-compact';
    const config = configFor(cluster, {
      s3: true,
      snapshot: { compression: 'zstd' },
      encryption: { recipients: [ageRecipient] },
    });
    const store = await openStore(config);
    const metrics = createMetrics({ defaultMetrics: false });
    const pool = await startWorkerPool({ config, store, log, lockDurationMs: 2_000, lockRetryMs: 200 });
    let writer: DeltaWriter | undefined;
    try {
      await takeBackup({ config, store, log, cause: { source: 'manual' } });
      writer = startDeltaWriter({ config, store, log, metrics, snapshotPollMs: 200 });
      await writeLoad(etcd.client, { ops: 200, prefix: '/registry/compact' });
      const [first] = await caughtUp(store, cluster);
      await writer.close();
      writer = undefined;
      const loggedEnd = first?.endRevision ?? 0;

      await writeLoad(etcd.client, { ops: 200, prefix: '/registry/compact-lost' });
      const compactAt = await currentRevision(etcd.client);
      await etcd.client.kv.compact({ revision: String(compactAt), physical: true });

      writer = startDeltaWriter({ config, store, log, metrics, snapshotPollMs: 200 });
      const gap = await waitFor(
        'the gap record with its snapshot',
        async () => (await readDeltaCatalog(store, cluster)).gaps.find((g) => g.toRevision !== undefined),
        60_000,
        100,
      );
      assert.equal(gap.reason, 'compacted');
      assert.equal(gap.fromRevision, loggedEnd + 1, 'the gap starts right after what the log holds');
      const snapshots = await listSnapshots(store, cluster);
      const after = snapshots.find((s) => s.etcd.revision === gap.toRevision);
      assert.ok(after, 'a full snapshot at the gap end');
      assert.ok(after.etcd.revision >= compactAt, 'the snapshot holds everything the gap lost');

      await writeLoad(etcd.client, { ops: 100, prefix: '/registry/compact-after' });
      const chains = await caughtUp(store, cluster);
      const newest = chains[chains.length - 1] as DeltaChain;
      assert.equal(newest.follows, after.id);
      assert.equal(newest.startRevision, after.etcd.revision + 1);
      assert.equal(chains.length, 2, 'the old chain and the new one');
      assert.ok(newest.segments.every((m) => m.age && m.key.endsWith('.events.ndjson.zst.age')));
      const stored = await chainEvents(store, newest, { ageIdentityFile: ageKeyFile });
      assert.deepEqual(stored, await sourceEvents(etcd.client, newest.startRevision, newest.endRevision));
      assert.equal(await counter(metrics, 'deltaGaps', { cluster, reason: 'compacted' }), 1);
    } finally {
      await writer?.close();
      await pool.close();
      await store.close();
    }
  });

  it('store down: the buffer stays bounded, the lag grows, and the log catches up from etcd after', async () => {
    const cluster = 'w-down';
    const config = configFor(cluster, { snapshot: { compression: 'gzip' } });
    const store = await openStore(config);
    const metrics = createMetrics({ defaultMetrics: false });
    const deltas = join(work.path, 'store', cluster, 'deltas');
    let writer: DeltaWriter | undefined;
    try {
      await takeBackup({ config, store, log, cause: { source: 'manual' } });
      writer = startDeltaWriter({ config, store, log, metrics });
      await writeLoad(etcd.client, { ops: 50, prefix: '/registry/down' });
      await caughtUp(store, cluster);

      // The store refuses every write: its folder is replaced by a file.
      await rename(deltas, `${deltas}.away`);
      await writeFile(deltas, 'not a folder');
      await writeLoad(etcd.client, { ops: 1500, prefix: '/registry/down-outage', valueBytes: 400 });
      const lag1 = await waitFor(
        'the lag to show',
        async () => {
          const lag = await counter(metrics, 'deltaLag', { cluster });
          return lag > 0 ? lag : undefined;
        },
        20_000,
        100,
      );
      const lag2 = await waitFor(
        'the lag to grow',
        async () => {
          const lag = await counter(metrics, 'deltaLag', { cluster });
          return lag > lag1 ? lag : undefined;
        },
        20_000,
        100,
      );
      assert.ok(lag2 > lag1);
      assert.ok((await counter(metrics, 'deltaWriteFailures', { cluster })) >= 1, 'failures counted');
      // About 1 MiB of events was written during the outage; the writer held at most two segments.
      const bound = 2 * config.delta.maxSegmentBytes + 8 * KIB;
      assert.ok(writer.peakBufferedBytes <= bound, `peak ${writer.peakBufferedBytes} bytes, bound ${bound}`);
      assert.ok(writer.peakBufferedBytes >= config.delta.maxSegmentBytes, 'the buffer did fill');

      await rm(deltas);
      await rename(`${deltas}.away`, deltas);
      const chains = await caughtUp(store, cluster);
      const { problems } = await chainsOf(store, cluster);
      assert.deepEqual(problems, []);
      assert.equal(chains.length, 1);
      const chain = chains[0] as DeltaChain;
      assert.deepEqual(
        await chainEvents(store, chain),
        await sourceEvents(etcd.client, chain.startRevision, chain.endRevision),
      );
      assert.equal(await counter(metrics, 'deltaGaps', { cluster }), 0);
      await waitFor(
        'the lag to fall back to 0',
        async () => ((await counter(metrics, 'deltaLag', { cluster })) === 0 ? true : undefined),
        20_000,
        100,
      );
    } finally {
      await writer?.close();
      await store.close();
    }
  });
});
