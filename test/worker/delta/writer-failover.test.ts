import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { configSchema } from '../../../core/config/index.js';
import { createLogger } from '../../../core/logger.js';
import { takeBackup } from '../../../worker/backup.js';
import { readDeltaCatalog } from '../../../worker/delta/catalog.js';
import { buildChains } from '../../../worker/delta/segment.js';
import { FileStore } from '../../../worker/stores/file.js';
import { comparable, currentRevision, readSegmentEvents, sourceEvents, writeLoad } from '../../support/delta.js';
import { startEtcd } from '../../support/etcd.js';
import { waitFor } from '../../support/ports.js';
import { Processes, type CliProcess } from '../../support/processes.js';
import { startRedis } from '../../support/redis.js';
import { tempDir } from '../../support/tmp.js';

const LEADS = 'delta log: this worker is the writer';

test('writer failover between two worker processes (kill -9 the writer mid-load): the chain has no gap and no duplicate', async () => {
  const [etcd, redis, dir] = await Promise.all([startEtcd(), startRedis(), tempDir('delta-failover')]);
  const processes = new Processes();
  const cluster = 'failover';
  const storeDir = join(dir.path, 'store');
  const store = new FileStore(storeDir);
  try {
    const config = configSchema.parse({
      cluster,
      etcd: { endpoints: [etcd.endpoint] },
      store: { url: `file://${storeDir}` },
      snapshot: { compression: 'zstd' },
    });
    const base = await takeBackup({
      config,
      store,
      log: createLogger({ level: 'fatal' }),
      cause: { source: 'manual' },
    });
    const args = [
      '--endpoints',
      etcd.endpoint,
      '--store',
      `file://${storeDir}`,
      '--redis-url',
      redis.url,
      '--cluster',
      cluster,
      '--max-interval',
      '0',
      '--lock-duration',
      '2s',
      '--delta',
      '--delta-flush-interval',
      '300ms',
      '--delta-max-segment-bytes',
      '65536',
    ];
    const workers = [
      await processes.start('worker', args, { name: 'worker-a' }),
      await processes.start('worker', args, { name: 'worker-b' }),
    ];
    const leadsNow = async (): Promise<CliProcess> =>
      waitFor(
        'a worker to lead the delta log',
        () => Promise.resolve(workers.find((w) => !w.exit() && w.logs().some((l) => l.msg === LEADS))),
        30_000,
        50,
      );
    const first = await leadsNow();
    const other = workers.find((w) => w !== first) as CliProcess;
    assert.equal(
      other.logs().some((l) => l.msg === LEADS),
      false,
      'only one writer at a time',
    );

    const load = writeLoad(etcd.client, { ops: 3000, prefix: '/registry/failover' });
    await waitFor(
      'a few segments from the first writer',
      async () => ((await readDeltaCatalog(store, cluster)).manifests.length >= 3 ? true : undefined),
      60_000,
      50,
    );
    await first.kill();
    const second = await waitFor(
      'the other worker to take over',
      () => Promise.resolve(other.logs().some((l) => l.msg === LEADS) ? other : undefined),
      30_000,
      50,
    );
    await load;
    const end = await currentRevision(etcd.client);
    await waitFor(
      'the log to hold every revision',
      async () => {
        const { chains } = buildChains((await readDeltaCatalog(store, cluster)).manifests);
        return (chains[chains.length - 1]?.endRevision ?? 0) >= end ? true : undefined;
      },
      60_000,
      100,
    );

    const { manifests } = await readDeltaCatalog(store, cluster);
    // No duplicate: every published segment starts right after the previous one, none overlaps.
    let expected = base.etcd.revision + 1;
    for (const m of manifests) {
      assert.equal(m.firstRevision, expected, `segment ${m.key} starts where the previous one ended`);
      assert.equal(m.chain.follows, base.id);
      expected = m.lastRevision + 1;
    }
    const { chains, problems } = buildChains(manifests);
    assert.deepEqual(problems, []);
    assert.equal(chains.length, 1);
    const stored = [];
    for (const m of manifests) stored.push(...(await readSegmentEvents(store, m)).map(comparable));
    assert.deepEqual(stored, await sourceEvents(etcd.client, base.etcd.revision + 1, expected - 1));
    assert.ok(
      second.logs().some((l) => l.msg === 'delta log: start point' && /resuming the chain/.test(String(l.why))),
    );
  } finally {
    await processes.killAll();
    await Promise.allSettled([etcd.stop(), redis.stop()]);
    await dir.remove();
  }
});
