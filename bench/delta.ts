/**
 * The delta log's recovery point under a steady write load: a real etcd, Redis and file store;
 * a worker process with the delta log on (the compiled CLI, as in production) and, beside it, one
 * with it off as the baseline for CPU and memory. For each rate, 1 KiB puts are sent at a steady
 * pace; the RPO of a put is the time from its acknowledgement to the publication of the segment
 * that holds its revision (the manifest's mtime in the file store: no polling error).
 *
 * The load comes from child processes (bench/delta-load.ts: an open-loop schedule over several
 * HTTP/2 connections each), so the bench process's own work does not cap the rate; a rate the
 * load did not reach within 5 % is said so under the table, and that row's CPU and RSS are for the
 * rate reached.
 *
 *   npx tsx bench/delta.ts            (env: BENCH_DELTA_RATES=500,2000  BENCH_DELTA_SECONDS=40
 *                                      BENCH_DELTA_FLUSH=10s  BENCH_CLI_JS=<compiled cli/main.js>
 *                                      BENCH_DELTA_GENERATORS=2  BENCH_DELTA_CONNECTIONS=4 (each)
 *                                      BENCH_WORKER_NODE_OPTIONS=<NODE_OPTIONS for the workers>)
 *
 * Targets (issue 10): p99 < flushInterval + 2 s; writer RSS < 150 MiB. Workers run without
 * NODE_OPTIONS, as the image runs them (Dockerfile; core/young-generation.ts keeps the young
 * generation small itself); BENCH_WORKER_NODE_OPTIONS sets some for a comparison.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { configSchema } from '../core/config/index.js';
import { parseDuration } from '../core/duration.js';
import { createLogger } from '../core/logger.js';
import { takeBackup } from '../worker/backup.js';
import { readDeltaCatalog } from '../worker/delta/catalog.js';
import { FileStore } from '../worker/stores/file.js';
import { startEtcd } from '../test/support/etcd.js';
import { freePort } from '../test/support/ports.js';
import { startRedis } from '../test/support/redis.js';
import { tempDir } from '../test/support/tmp.js';
import { envInt } from './common.js';
import type { LoadJob, LoadResult } from './delta-load.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const RATES = (process.env.BENCH_DELTA_RATES ?? '500,2000').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_DELTA_SECONDS ?? 40);
const FLUSH = process.env.BENCH_DELTA_FLUSH ?? '10s';
const FLUSH_MS = parseDuration(FLUSH) ?? 10_000;
// One generator sustains 2,000 puts/s at ~40% of a core here; two leave headroom when the machine
// is busy (each is one thread) and reached 6,000/s.
const GENERATORS = envInt('BENCH_DELTA_GENERATORS', 2);
const CONNECTIONS = envInt('BENCH_DELTA_CONNECTIONS', 4);
// A row whose load fell short of this share of the requested rate is flagged under the table.
const REACHED = 0.95;
const TARGET_RSS_MIB = 150;
const CLUSTER = 'bench';
const MIB = 1024 * 1024;

interface Proc {
  child: ChildProcess;
  stderr: () => string;
}

function startWorker(args: string[]): Proc {
  const cli = process.env.BENCH_CLI_JS;
  const argv = cli ? [cli] : ['--import', 'tsx', join(ROOT, 'cli', 'main.ts')];
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_AUTOBACKUP_')) env[k] = v;
  // As the image runs it (Dockerfile): no NODE_OPTIONS, whatever the bench itself was started with.
  delete env.NODE_OPTIONS;
  if (process.env.BENCH_WORKER_NODE_OPTIONS) env.NODE_OPTIONS = process.env.BENCH_WORKER_NODE_OPTIONS;
  const child = spawn(process.execPath, [...argv, 'worker', ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-200_000)));
  return { child, stderr: () => err };
}

/** CPU seconds (user + system, with its exited children) and current RSS of a process, from /proc. */
async function usage(pid: number): Promise<{ cpu: number; rssMiB: number }> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  // After "pid (comm) ": utime, stime, then cutime, cstime (exited children: the zstd processes),
  // fields 11-14 (0-based), in clock ticks (100/s).
  const cpu = (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100;
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
  return { cpu, rssMiB: rss };
}

/** The load generators of one rate: forked, connected and warmed up, waiting for {@link Load.run}. */
interface Load {
  /** Starts the schedule on every generator at once and resolves with their results. */
  run(): Promise<{ startAt: number; results: LoadResult[] }>;
  kill: () => void;
}

async function startLoad(endpoint: string, rate: number): Promise<Load> {
  const children = Array.from({ length: GENERATORS }, () =>
    fork(join(ROOT, 'bench', 'delta-load.ts'), [], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  const kill = () => children.forEach((c) => c.kill('SIGKILL'));
  const next = <T>(child: ChildProcess): Promise<T> =>
    new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`a load generator exited (code ${code})`));
      child.once('exit', onExit);
      child.once('message', (msg) => {
        child.off('exit', onExit);
        resolve(msg as T);
      });
    });
  try {
    await Promise.all(
      children.map((child, index) => {
        const ready = next<{ type: 'ready' }>(child);
        const job: LoadJob = {
          type: 'job',
          endpoint,
          rate,
          seconds: SECONDS,
          index,
          of: GENERATORS,
          connections: CONNECTIONS,
          maxInFlight: Math.max(200, rate),
        };
        child.send(job);
        return ready;
      }),
    );
  } catch (err) {
    kill();
    throw err;
  }
  return {
    kill,
    async run() {
      // A moment ahead, so that every generator has the message before its first put is due.
      const startAt = Date.now() + 200;
      const results = await Promise.all(
        children.map((child) => {
          const result = next<LoadResult>(child);
          child.send({ type: 'start', at: startAt });
          return result;
        }),
      );
      return { startAt, results };
    },
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function main(): Promise<void> {
  const [etcd, redis, dir] = await Promise.all([
    startEtcd({ args: ['--quota-backend-bytes', String(4 * 1024 * MIB)] }),
    startRedis(),
    tempDir('bench-delta'),
  ]);
  const procs: Proc[] = [];
  const closers: (() => void)[] = [];
  try {
    const storeDir = join(dir.path, 'store');
    const store = new FileStore(storeDir);
    const config = configSchema.parse({
      cluster: CLUSTER,
      etcd: { endpoints: [etcd.endpoint] },
      store: { url: `file://${storeDir}` },
    });
    await takeBackup({ config, store, log: createLogger({ level: 'fatal' }), cause: { source: 'manual' } });
    const common = (cluster: string) => [
      '--listen',
      '',
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
    ];
    const withPort = async (args: string[]) => {
      const a = [...args];
      a[1] = `127.0.0.1:${await freePort()}`;
      return a;
    };
    const writer = startWorker([...(await withPort(common(CLUSTER))), '--delta', '--delta-flush-interval', FLUSH]);
    const baseline = startWorker(await withPort(common('bench-baseline')));
    procs.push(writer, baseline);
    for (let i = 0; !writer.stderr().includes('delta log: watching'); i++) {
      if (i > 600 || writer.child.exitCode !== null)
        throw new Error(`the writer did not start:\n${writer.stderr().slice(-3000)}`);
      await sleep(100);
    }
    await sleep(2_000);

    console.log(
      `delta log RPO, ${SECONDS}s per rate, 1 KiB values, flushInterval ${FLUSH}, maxSegmentBytes 8 MiB (default); load: ${GENERATORS} processes x ${CONNECTIONS} connections, open loop; workers: ${process.env.BENCH_CLI_JS ? 'compiled CLI' : 'cli/main.ts under tsx'}`,
    );
    console.log(
      'rate/s  achieved/s  puts    segments  p50 s   p99 s   max s   p99/(flush+2s)  writer CPU  baseline CPU  writer RSS peak  baseline RSS peak',
    );
    const notes: string[] = [];
    const rows: { rate: number; achieved: number; p99: number; rssMiB: number }[] = [];
    for (const rate of RATES) {
      const load = await startLoad(etcd.endpoint, rate);
      closers.push(load.kill);
      const etcdPid = etcd.process.pid ?? 0;
      const [w0, b0, e0] = await Promise.all([
        usage(writer.child.pid ?? 0),
        usage(baseline.child.pid ?? 0),
        usage(etcdPid),
      ]);
      const started = Date.now();
      let wPeak = w0.rssMiB;
      let bPeak = b0.rssMiB;
      const sampler = setInterval(() => {
        void usage(writer.child.pid ?? 0).then((u) => (wPeak = Math.max(wPeak, u.rssMiB)));
        void usage(baseline.child.pid ?? 0).then((u) => (bPeak = Math.max(bPeak, u.rssMiB)));
      }, 200);
      const { startAt, results } = await load.run();
      const e1 = await usage(etcdPid);
      const acks = results.flatMap((r) => r.revisions.map((revision, i) => ({ revision, at: r.ackedAt[i] as number })));
      const errors = results.reduce((n, r) => n + r.errors, 0);
      if (acks.length === 0) throw new Error(`no put was acknowledged at ${rate}/s: ${results[0]?.firstError ?? ''}`);
      const lastAck = acks.reduce((t, a) => Math.max(t, a.at), 0);
      const elapsed = Math.max(SECONDS, (lastAck - startAt) / 1000);
      const lastRevision = acks.reduce((r, a) => Math.max(r, a.revision), 0);
      const firstRevision = acks.reduce((r, a) => Math.min(r, a.revision), Infinity);
      // Wait until the log holds the last put, then a margin for the lag to show in RSS/CPU.
      let manifests = (await readDeltaCatalog(store, CLUSTER)).manifests;
      for (let i = 0; (manifests[manifests.length - 1]?.lastRevision ?? 0) < lastRevision; i++) {
        if (i > 600) throw new Error('the delta log did not catch up within 60 s');
        await sleep(100);
        manifests = (await readDeltaCatalog(store, CLUSTER)).manifests;
      }
      clearInterval(sampler);
      const w1 = await usage(writer.child.pid ?? 0);
      const b1 = await usage(baseline.child.pid ?? 0);
      const wall = (Date.now() - started) / 1000;

      const published = await Promise.all(
        manifests.map(async (m) => ({
          first: m.firstRevision,
          last: m.lastRevision,
          at: (await stat(join(storeDir, m.key.replace(/\.events\..*$/, '.manifest.json')))).mtimeMs,
        })),
      );
      const delays: number[] = [];
      for (const a of acks) {
        const seg = published.find((p) => a.revision >= p.first && a.revision <= p.last);
        if (!seg) throw new Error(`revision ${a.revision} is in no segment`);
        delays.push(Math.max(0, seg.at - a.at) / 1000);
      }
      delays.sort((x, y) => x - y);
      const segs = published.filter((p) => p.last >= firstRevision).length;
      const p99 = percentile(delays, 99);
      const achieved = acks.length / elapsed;
      rows.push({ rate, achieved, p99, rssMiB: wPeak });
      console.log(
        [
          String(rate).padEnd(6),
          `${achieved.toFixed(0)}${achieved < REACHED * rate ? '*' : ''}`.padEnd(10),
          String(acks.length).padEnd(6),
          String(segs).padEnd(8),
          percentile(delays, 50).toFixed(2).padEnd(6),
          p99.toFixed(2).padEnd(6),
          (delays[delays.length - 1] ?? NaN).toFixed(2).padEnd(6),
          `${(p99 / (FLUSH_MS / 1000 + 2)).toFixed(2)}x`.padEnd(14),
          `${(((w1.cpu - w0.cpu) / wall) * 100).toFixed(1)}% core`.padEnd(10),
          `${(((b1.cpu - b0.cpu) / wall) * 100).toFixed(1)}% core`.padEnd(12),
          `${wPeak.toFixed(0)} MiB`.padEnd(15),
          `${bPeak.toFixed(0)} MiB`,
        ].join('  '),
      );
      if (achieved < REACHED * rate) {
        const unsent = results.reduce((n, r) => n + r.unsent, 0);
        const lag = results.reduce((n, r) => Math.max(n, r.maxLagMs), 0);
        const generatorCpu = results.reduce((n, r) => n + r.cpuSeconds, 0) / elapsed;
        const etcdCpu = (e1.cpu - e0.cpu) / elapsed;
        notes.push(
          `* ${rate}/s requested, ${achieved.toFixed(0)}/s achieved (${((achieved / rate) * 100).toFixed(0)}%): the load generator/machine was the limit, not the writer; ` +
            `that row's CPU and RSS are for ${achieved.toFixed(0)} puts/s. (${unsent} puts unsent, ${errors} failed, sends up to ${(lag / 1000).toFixed(1)} s late; ` +
            `load generators ${(generatorCpu * 100).toFixed(0)}% core, etcd ${(etcdCpu * 100).toFixed(0)}% core, of ${availableParallelism()} cores)`,
        );
      } else if (errors > 0)
        notes.push(`${rate}/s: ${errors} puts failed (first: ${results.find((r) => r.firstError)?.firstError ?? ''})`);
      load.kill();
      // Keep etcd small between rates.
      await etcd.client.kv.compact({ revision: String(lastRevision) }).catch(() => undefined);
      await sleep(FLUSH_MS + 1_000);
    }
    for (const note of notes) console.log(note);
    const verdict = (ok: boolean) => (ok ? 'MET' : 'NOT MET');
    for (const r of rows) {
      const short = r.achieved < REACHED * r.rate ? ` (measured at ${r.achieved.toFixed(0)}/s, not ${r.rate}/s)` : '';
      console.log(
        `${r.rate}/s: RPO p99 < flushInterval + 2 s: ${verdict(r.p99 < FLUSH_MS / 1000 + 2)} (${r.p99.toFixed(2)} s); ` +
          `writer RSS < ${TARGET_RSS_MIB} MiB: ${verdict(r.rssMiB < TARGET_RSS_MIB)} (${r.rssMiB.toFixed(0)} MiB)${short}`,
      );
    }
    if (!process.env.BENCH_CLI_JS)
      console.log(
        'RSS under tsx: its loader adds ~70 MiB to each worker; the RSS target is for the compiled CLI (BENCH_CLI_JS, as scripts/bench.sh runs it)',
      );
    const segments = (await readDeltaCatalog(store, CLUSTER)).manifests;
    const stored = segments.reduce((n, m) => n + m.storedSize, 0);
    const body = segments.reduce((n, m) => n + m.bodySize, 0);
    console.log(
      `segments ${segments.length}, NDJSON ${(body / MIB).toFixed(1)} MiB stored as ${(stored / MIB).toFixed(1)} MiB (zstd, ${(body / stored).toFixed(1)}x smaller: the load repeats 64 values)`,
    );
  } finally {
    for (const close of closers) close();
    for (const p of procs) p.child.kill('SIGKILL');
    await Promise.allSettled([etcd.stop(), redis.stop()]);
    await dir.remove();
  }
}

await main();
