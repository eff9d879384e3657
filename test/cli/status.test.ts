import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../core/config/index.js';
import { createLogger } from '../../core/logger.js';
import { createQueueRecorder } from '../../core/queue/index.js';
import { startWorkerPool } from '../../worker/pool.js';
import { FileStore } from '../../worker/stores/file.js';
import type { StatusReport } from '../../cli/commands/status.js';
import { runCli, runCliOk } from '../support/cli.js';
import { fillEtcd, startEtcd, type EtcdServer } from '../support/etcd.js';
import { freePort, waitFor } from '../support/ports.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { tempDir } from '../support/tmp.js';

let etcd: EtcdServer;
let redis: RedisServer;
let work: { path: string; remove: () => Promise<void> };
let common: string[];
let store: string;

before(async () => {
  [etcd, redis] = await Promise.all([startEtcd(), startRedis()]);
  work = await tempDir('cli-status');
  await fillEtcd(etcd.client, 30, 16, '/registry/pods/ns/');
  store = join(work.path, 'store');
  const config = join(work.path, 'config.yaml');
  await writeFile(
    config,
    [
      'drill:',
      `  scratchDir: ${join(work.path, 'scratch')}`,
      '  freeSpaceMargin: 0',
      'queue:',
      '  debounceWindow: 1h',
      '  maxInterval: 0',
      '  enqueueTimeout: 2s',
      'redis:',
      '  prefix: eab-status',
      '',
    ].join('\n'),
  );
  common = ['--endpoints', etcd.endpoint, '--store', `file://${store}`, '--config', config];
});

after(async () => {
  await Promise.all([etcd?.stop(), redis?.stop()]);
  await work?.remove();
});

async function status(extra: string[] = []): Promise<StatusReport> {
  return JSON.parse(
    (await runCliOk(['status', ...common, '--redis-url', redis.url, '--json', ...extra])).stdout,
  ) as StatusReport;
}

test('status: newest snapshot, newest proven restorable, pending triggers and the last failure, through the CLI', async () => {
  const empty = await runCliOk(['status', ...common, '--redis-url', redis.url]);
  assert.match(empty.stdout, /newest snapshot +none yet/);
  assert.match(empty.stdout, /proven restorable +none: no snapshot has passed a drill/);
  assert.match(empty.stdout, /pending triggers +none/);

  const first = JSON.parse((await runCliOk(['snapshot', ...common, '--json'])).stdout) as { id: string };
  await runCliOk(['drill', ...common]);
  await fillEtcd(etcd.client, 5, 16, '/registry/pods/ns/more-');
  const second = JSON.parse((await runCliOk(['snapshot', ...common, '--json'])).stdout) as { id: string };

  const report = await status();
  assert.equal(report.snapshots, 2);
  assert.equal(report.newest?.id, second.id);
  assert.equal(report.newestProvenRestorable?.id, first.id, 'the newer snapshot was never drilled');
  assert.deepEqual(report.lastDrill && [report.lastDrill.id, report.lastDrill.ok], [first.id, true]);
  assert.equal(report.lastFailure, null);
  assert.equal(report.queue.reachable, true);

  // Triggers inside a 1h debounce window: counted in the ledger, their job delayed until the window ends.
  const config = loadConfig({
    env: {},
    file: join(work.path, 'config.yaml'),
    flags: { endpoints: etcd.endpoint, store: `file://${store}`, 'redis-url': redis.url },
  });
  const recorder = createQueueRecorder({ config });
  try {
    for (let i = 0; i < 3; i++)
      recorder.record({ source: 'audit', resource: `apps/deployments shop/web-${i}`, at: new Date() });
    recorder.record({ source: 'admission', resource: 'v1/configmaps shop/x', at: new Date() });
    await waitFor('the triggers to reach Redis', async () => {
      await recorder.flush();
      return recorder.status().pendingTriggers === 0;
    });
  } finally {
    await recorder.close();
  }
  const pending = await status();
  assert.ok(pending.queue.reachable);
  assert.equal(pending.queue.openWindows.length, 1);
  assert.deepEqual(pending.queue.openWindows[0]?.counts, { audit: 3, admission: 1 });
  assert.deepEqual(
    pending.queue.pending.map((j) => j.state),
    ['delayed'],
  );
  const text = await runCliOk(['status', ...common, '--redis-url', redis.url]);
  assert.match(text.stdout, /pending triggers +4 in 1 windows/);
  assert.match(text.stdout, /window \S+ +ends .*audit:3, admission:1/);

  // A snapshot job whose attempt failed (etcd unreachable) is the last failure; it is retried (queue.attempts 0).
  const closed = await freePort();
  const failing = loadConfig({
    env: {},
    flags: {
      endpoints: `http://127.0.0.1:${closed}`,
      store: `file://${store}`,
      'redis-url': redis.url,
      'etcd-dial-timeout': '1s',
    },
    file: join(work.path, 'config.yaml'),
  });
  const pool = await startWorkerPool({
    config: failing,
    store: new FileStore(store),
    log: createLogger({ level: 'silent' }),
  });
  try {
    await runCliOk(['snapshot', '--enqueue', ...common, '--redis-url', redis.url]);
    await waitFor(
      'the job to fail',
      async () => {
        const r = await status();
        return r.lastFailure ?? undefined;
      },
      60_000,
    );
  } finally {
    await pool.close();
  }
  const failed = await status();
  assert.equal(failed.lastFailure?.kind, 'snapshot');
  assert.equal(failed.lastFailure?.retrying, true);
  assert.match(failed.lastFailure?.reason ?? '', new RegExp(`127\\.0\\.0\\.1:${closed}`));
  assert.match(
    (await runCliOk(['status', ...common, '--redis-url', redis.url])).stdout,
    /last failure +snapshot \S*manual-\S+ .*, retrying: .*127\.0\.0\.1/,
  );
});

test('status with Redis down prints what the store says, names Redis and exits 1', async () => {
  const closed = await freePort();
  const r = await runCli(['status', ...common, '--redis-url', `redis://127.0.0.1:${closed}`]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /newest snapshot +\S+Z-r\d+/);
  assert.match(r.stdout, /queue +UNREACHABLE at redis:\/\/127\.0\.0\.1:\d+/);
  assert.match(r.stderr, /Redis at redis:\/\/127\.0\.0\.1:\d+ cannot be reached/);
});
