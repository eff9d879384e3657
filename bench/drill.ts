/**
 * A restore drill's cost (issue 9): our drill of the benchmark database against the floor
 * measured in the same run, `etcdctl snapshot restore` of the same snapshot file on local disk
 * plus booting etcd on the restored dir until it answers a linearizable read. That floor is what
 * any "does it boot" check must pay; the drill adds the download through the verify path
 * (SHA-256, decompression, bbolt meta pages, `snapshot status`) and the checks (revision, HashKV,
 * per-prefix key counts).
 *
 * A real etcd is filled with BENCH_SIZE_MIB (default 256) of Kubernetes-shaped objects
 * (bench/fill.ts), one snapshot is taken with takeBackup into a file store (BENCH_DRILL_CODEC,
 * default zstd, the default codec), and the floor's input is that same snapshot downloaded and
 * checked once, outside the timing. Each round runs both sides, alternating which goes first, after
 * `sync`: the drill in its own process (bench/run-drill.ts, compiled to JS by scripts/bench.sh),
 * timed as runDrill and as the whole process; the floor as the etcdctl process plus etcd's start.
 * Both sides boot etcd with the same flags (worker/drill.ts startEtcd) and poll it the same way.
 * Peak RSS: our process (getrusage), each etcd (VmHWM from /proc, sampled every 50 ms), and the
 * floor's etcdctl (/usr/bin/time's maximum resident set).
 *
 * Env: BENCH_SIZE_MIB, BENCH_ROUNDS (default 3), BENCH_WARMUP (default 1), BENCH_DRILL_CODEC,
 * BENCH_DRILL_JS (the runner compiled to JS; without it the runner runs under tsx, whose loader
 * adds RSS that production does not have).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../core/config/index.js';
import { createLogger } from '../core/logger.js';
import { takeBackup } from '../worker/backup.js';
import { freePort, startEtcd as startDrillEtcd } from '../worker/drill.js';
import { findEtcdTools, restoreArgv } from '../worker/etcd-tools.js';
import { FileStore } from '../worker/stores/file.js';
import { verifyInto } from '../worker/verify.js';
import { startEtcd } from '../test/support/etcd.js';
import { tempDir } from '../test/support/tmp.js';
import { fillEtcd } from './fill.js';
import { peakRssOf } from './peak-rss.js';
import type { DrillRunResult, RunDrillInput } from './run-drill.js';
import { envInt, runChild, median, mib, secs, MiB } from './common.js';

const spread = (xs: number[], f: (x: number) => string): string =>
  `${f(median(xs))} (${f(Math.min(...xs))} .. ${f(Math.max(...xs))})`;

interface FloorSample {
  ms: number;
  restoreMs: number;
  startMs: number;
  etcdctlMaxRss: number;
  etcdMaxRss: number;
}

/** `etcdctl snapshot restore` of the local file, then etcd on it until a linearizable read answers. */
async function runFloor(file: string, dataDir: string): Promise<FloorSample> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const peer = `http://127.0.0.1:${peerPort}`;
  const started = performance.now();
  // `%M` is the maximum resident set in KiB, printed last on stderr.
  const restore = await runChild(
    '/usr/bin/time',
    [
      '-f',
      '%M',
      'etcdctl',
      ...restoreArgv({
        file,
        dataDir,
        name: 'drill',
        initialCluster: `drill=${peer}`,
        initialClusterToken: 'drill-floor',
        initialAdvertisePeerUrls: peer,
      }),
    ],
    { ...process.env, ETCDCTL_API: '3' },
  );
  const restoreMs = performance.now() - started;
  if (restore.code !== 0) throw new Error(`etcdctl snapshot restore exited with ${restore.code}: ${restore.stderr}`);
  const etcdctlMaxRss = Number(restore.stderr.trim().split('\n').pop()) * 1024;
  const etcd = startDrillEtcd('etcd', dataDir, clientPort, peer);
  let etcdMaxRss = 0;
  try {
    await etcd.waitReady(120_000);
    await etcd.during(etcd.client.kv.range({ key: Buffer.from([0]), limit: 1, keys_only: true }));
    const ms = performance.now() - started;
    if (etcd.child.pid !== undefined) etcdMaxRss = await peakRssOf(etcd.child.pid);
    return { ms, restoreMs, startMs: ms - restoreMs, etcdctlMaxRss, etcdMaxRss };
  } finally {
    await etcd.stop();
  }
}

async function runOurs(input: RunDrillInput): Promise<DrillRunResult & { wallMs: number }> {
  const runner = process.env.BENCH_DRILL_JS;
  const args = runner ? [runner] : ['--import', 'tsx', join(import.meta.dirname, 'run-drill.ts')];
  const r = await runChild(process.execPath, [...args, JSON.stringify(input)]);
  if (r.code !== 0) throw new Error(`our drill runner exited with ${r.code}: ${r.stderr.trim()}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as DrillRunResult;
  if (!out.ok) throw new Error(`the drill failed: ${out.failure ?? '?'}`);
  return { ...out, wallMs: r.wallMs };
}

async function main(): Promise<void> {
  const sizeMiB = envInt('BENCH_SIZE_MIB', 256);
  const rounds = envInt('BENCH_ROUNDS', 3);
  const warmup = envInt('BENCH_WARMUP', 1, 0);
  const codec = process.env.BENCH_DRILL_CODEC ?? 'zstd';
  const work = await tempDir('bench-drill');
  const source = await startEtcd({ args: ['--quota-backend-bytes', String(Math.max(2048, sizeMiB * 4) * MiB)] });
  try {
    console.log(
      `== drill: ${sizeMiB} MiB of Kubernetes-like objects (bench/fill.ts), ${codec} snapshot in a file store`,
    );
    const fill = await fillEtcd(source.client, sizeMiB * MiB);
    const storeDir = join(work.path, 'store');
    const scratchDir = join(work.path, 'scratch');
    const flags = {
      endpoints: source.endpoint,
      cluster: 'bench',
      store: `file://${storeDir}`,
      compression: codec,
    };
    const input: RunDrillInput = { flags, overrides: { 'drill.scratchDir': scratchDir } };
    const config = loadConfig({ env: {}, flags });
    const store = new FileStore(storeDir);
    const log = createLogger({ level: 'warn' });
    const manifest = await takeBackup({ config, store, log, cause: { source: 'manual' } });
    // The drill reads a snapshot, not the source: stop it so it costs neither side anything.
    await source.stop();
    const tool = await findEtcdTools({ etcdctl: 'etcdctl' });
    const floorInput = join(work.path, 'floor-input');
    await mkdir(floorInput, { recursive: true });
    const { file } = await verifyInto(floorInput, { store, manifest, etcdctl: 'etcdctl', tool });
    console.log(
      `${fill.keys} objects; snapshot ${manifest.id}: db ${mib(manifest.dbSize)}, stored ${mib(manifest.storedSize)}, ` +
        `${manifest.keyCounts ? Object.keys(manifest.keyCounts.prefixes).length : 0} prefixes counted; restore tool ${tool.name} ${tool.version}`,
    );

    const rows: { round: number; ours: DrillRunResult & { wallMs: number }; floor: FloorSample }[] = [];
    for (let round = 1 - warmup; round <= rounds; round++) {
      const order = round % 2 === 0 ? ['floor', 'ours'] : ['ours', 'floor'];
      let ours: (DrillRunResult & { wallMs: number }) | undefined;
      let floor: FloorSample | undefined;
      for (const side of order) {
        await runChild('sync', []);
        if (side === 'ours') ours = await runOurs(input);
        else {
          const dir = join(work.path, `floor-${round}`);
          floor = await runFloor(file, dir);
          await rm(dir, { recursive: true, force: true });
        }
      }
      if (!ours || !floor) throw new Error('a side did not run');
      const label = round < 1 ? 'warm-up' : `round ${round}`;
      console.log(
        `${label.padEnd(8)} drill ${secs(ours.ms)} (process ${secs(ours.wallMs)}, node ${mib(ours.maxRss)}, etcd ${mib(ours.etcdMaxRss)})  ` +
          `floor ${secs(floor.ms)} (restore ${secs(floor.restoreMs)} + start ${secs(floor.startMs)}, etcdctl ${mib(floor.etcdctlMaxRss)}, etcd ${mib(floor.etcdMaxRss)})  ` +
          `${(ours.ms / floor.ms).toFixed(2)}x${round < 1 ? '  (not counted)' : ''}`,
      );
      if (round >= 1) rows.push({ round, ours, floor });
    }

    const ratios = rows.map((r) => r.ours.ms / r.floor.ms);
    const wallRatios = rows.map((r) => r.ours.wallMs / r.floor.ms);
    const x = (n: number): string => `${n.toFixed(2)}x`;
    console.log(`\n== drill results (${rows.length} paired rounds: median (min .. max))`);
    console.log(
      `drill (runDrill)          ${spread(
        rows.map((r) => r.ours.ms),
        secs,
      )}`,
    );
    console.log(
      `drill (whole process)     ${spread(
        rows.map((r) => r.ours.wallMs),
        secs,
      )}`,
    );
    console.log(
      `floor (restore + start)   ${spread(
        rows.map((r) => r.floor.ms),
        secs,
      )}`,
    );
    console.log(`drill / floor             ${spread(ratios, x)}`);
    console.log(`drill process / floor     ${spread(wallRatios, x)}`);
    const peaks: [string, number[]][] = [
      ['drill process', rows.map((r) => r.ours.maxRss)],
      ["drill's etcd", rows.map((r) => r.ours.etcdMaxRss)],
      ['floor etcdctl', rows.map((r) => r.floor.etcdctlMaxRss)],
      ["floor's etcd", rows.map((r) => r.floor.etcdMaxRss)],
    ];
    for (const [what, values] of peaks) console.log(`peak RSS, ${what.padEnd(15)} ${spread(values, mib)}`);
  } finally {
    await source.stop().catch(() => undefined);
    await work.remove();
  }
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
