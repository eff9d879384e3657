/**
 * Point-in-time restore speed: a full snapshot plus BENCH_EVENTS (default 100,000) events of the
 * delta log replayed into a data dir, against the floor measured in the same run: `etcdctl
 * snapshot restore` (or etcdutl) of a snapshot of the same final state, which is what restoring
 * would cost had a full snapshot been taken right at the target.
 *
 * The source etcd gets BENCH_BASE_KEYS (default 10,000) Kubernetes-shaped keys of 1 KiB, a full
 * snapshot, then the events (70% updates, 20% creates, 10% deletes; a tenth of them in 8-key
 * transactions) while a watch records them; they are published as zstd segments of 2,000 events
 * with the real writeSegment. Each round restores both ways (replay first, then the floor, then
 * alternating) into fresh dirs after `sync`. Prints events applied per second, the times, the
 * ratio to the floor and the peak RSS of this process (the replay runs in it).
 *
 * Env: BENCH_EVENTS, BENCH_BASE_KEYS, BENCH_ROUNDS (default 2).
 */
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { loadConfig } from '../core/config/index.js';
import { createLogger } from '../core/logger.js';
import { takeBackup } from '../worker/backup.js';
import { readLogState, resolveTarget } from '../worker/delta/point-in-time.js';
import { replayToRevision } from '../worker/delta/replay.js';
import { findEtcdTools, restoreArgv, runTool } from '../worker/etcd-tools.js';
import { FileStore } from '../worker/stores/file.js';
import { verifyInto } from '../worker/verify.js';
import { publishSegments, watchAll } from '../test/support/delta-log.js';
import { startEtcd } from '../test/support/etcd.js';
import { tempDir } from '../test/support/tmp.js';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 100_000);
const BASE_KEYS = Number(process.env.BENCH_BASE_KEYS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const SCRATCH = process.env.BENCH_SCRATCH_DIR;
const VALUE = 'x'.repeat(1024);

function keyOf(i: number): string {
  const resources = ['pods', 'configmaps', 'secrets', 'events'];
  return `/registry/${resources[i % 4]}/ns-${i % 50}/obj-${i}`;
}

/** The event mix, concurrently (32 requests in flight) so that the source is not the bottleneck. */
async function load(client: Etcd3, events: number): Promise<number> {
  let next = BASE_KEYS;
  let written = 0;
  let revision = 0;
  const live: number[] = Array.from({ length: BASE_KEYS }, (_, i) => i);
  const one = async (): Promise<void> => {
    const dice = written % 10;
    let r: number;
    if (written % 100 < 10) {
      const ops = Array.from({ length: 8 }, () => client.put(keyOf(next++)).value(VALUE));
      r = Number(
        (
          await client
            .if(keyOf(-1), 'Version', '==', 0)
            .then(...ops)
            .commit()
        ).header.revision,
      );
      written += 8;
    } else if (dice < 7) {
      r = Number(
        (
          await client
            .put(keyOf(live[written % live.length] ?? 0))
            .value(`${VALUE}${written}`)
            .exec()
        ).header.revision,
      );
      written++;
    } else if (dice < 9) {
      const k = next++;
      live.push(k);
      r = Number((await client.put(keyOf(k)).value(VALUE).exec()).header.revision);
      written++;
    } else {
      const k = live.splice(written % live.length, 1)[0] ?? 0;
      r = Number((await client.delete().key(keyOf(k)).exec()).header.revision);
      written++;
    }
    revision = Math.max(revision, r);
  };
  const workers = Array.from({ length: 32 }, async () => {
    while (written < events) await one();
  });
  await Promise.all(workers);
  return revision;
}

function rss(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

async function main(): Promise<void> {
  const work = await tempDir('bench-replay');
  const source = await startEtcd({ args: ['--quota-backend-bytes', String(8 * 1024 ** 3)] });
  const log = createLogger({ level: 'warn' });
  try {
    const storeDir = join(work.path, 'store');
    const store = new FileStore(storeDir);
    const config = loadConfig({
      env: {},
      flags: { endpoints: source.endpoint, cluster: 'bench', store: `file://${storeDir}` },
    });
    for (let i = 0; i < BASE_KEYS; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, BASE_KEYS - i) }, (_, j) =>
          source.client
            .put(keyOf(i + j))
            .value(VALUE)
            .exec(),
        ),
      );
    }
    const base = await takeBackup({ config, store, log, cause: { source: 'manual' } });
    const live = await watchAll(source.client, base.etcd.revision + 1);
    const loadStarted = Date.now();
    const target = await load(source.client, EVENTS);
    await live.until(target);
    await live.stop();
    const events = live.events.length;
    console.error(
      `== ${events} events (revisions ${base.etcd.revision + 1}..${target}) written in ${Date.now() - loadStarted} ms`,
    );
    await publishSegments(store, live.events, {
      config,
      chain: { follows: base.id, startRevision: base.etcd.revision + 1 },
      perSegment: 2_000,
    });
    live.events.length = 0;
    // The floor's input: a snapshot of the same final state, downloaded and checked outside the timing.
    const final = await takeBackup({ config, store, log, cause: { source: 'manual' } });
    const tool = await findEtcdTools({ etcdctl: 'etcdctl' });
    const floorDir = join(work.path, 'floor-input');
    execFileSync('mkdir', ['-p', floorDir]);
    const { file } = await verifyInto(floorDir, { store, manifest: final, etcdctl: 'etcdctl', tool });

    const state = await readLogState(store, 'bench');
    const { plan } = await resolveTarget(store, state, { toRevision: target });
    // The final snapshot is at the target too: the replay must start from the base one.
    plan.sources = plan.sources.filter((s) => s.snapshot.id === base.id);

    const rows: { round: number; replayMs: number; applyMs: number; floorMs: number }[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? ['replay', 'floor'] : ['floor', 'replay'];
      const row = { round, replayMs: 0, applyMs: 0, floorMs: 0 };
      for (const which of order) {
        execFileSync('sync');
        const dir = join(work.path, `${which}-${round}`);
        const started = Date.now();
        if (which === 'replay') {
          const report = await replayToRevision({
            store,
            plan,
            dataDir: dir,
            etcdctl: 'etcdctl',
            log,
            ...(SCRATCH ? { scratchDir: SCRATCH } : {}),
          });
          row.replayMs = Date.now() - started;
          row.applyMs = report.replayMs;
          if (report.revision !== target || report.events !== events) {
            throw new Error(
              `replay reached ${report.revision} with ${report.events} events, expected ${target}/${events}`,
            );
          }
        } else {
          await runTool(tool, restoreArgv({ file, dataDir: dir }));
          row.floorMs = Date.now() - started;
        }
        await rm(dir, { recursive: true, force: true });
      }
      rows.push(row);
      console.error(
        `round ${round}: replay ${row.replayMs} ms (applying ${row.applyMs} ms, ${Math.round((events * 1000) / row.applyMs)} events/s), floor ${row.floorMs} ms, ratio ${(row.replayMs / row.floorMs).toFixed(1)}x`,
      );
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const replayMs = median(rows.map((r) => r.replayMs));
    const applyMs = median(rows.map((r) => r.applyMs));
    const floorMs = median(rows.map((r) => r.floorMs));
    console.log(
      JSON.stringify(
        {
          benchmark: 'replay',
          events,
          baseKeys: BASE_KEYS,
          tool: `${tool.name} ${tool.version}`,
          eventsPerSecond: Math.round((events * 1000) / applyMs),
          replayMs,
          floorMs,
          ratioToFloor: Number((replayMs / floorMs).toFixed(2)),
          peakRssMiB: rss(),
          rounds: rows,
        },
        null,
        2,
      ),
    );
  } finally {
    await source.stop();
    await work.remove();
  }
}

await main();
