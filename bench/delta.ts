/**
 * The delta log's recovery point under a steady write load: a real etcd, Redis and file store;
 * a worker process with the delta log on (the compiled CLI, as in production) and, beside it, one
 * with it off as the baseline for CPU and memory. For each rate, 1 KiB puts are sent at a steady
 * pace; the RPO of a put is the time from its acknowledgement to the publication of the segment
 * that holds its revision (the manifest's mtime in the file store: no polling error).
 *
 *   npx tsx bench/delta.ts            (env: BENCH_DELTA_RATES=500,2000  BENCH_DELTA_SECONDS=40
 *                                      BENCH_DELTA_FLUSH=10s  BENCH_CLI_JS=<compiled cli/main.js>)
 *
 * Targets (issue 10): p99 < flushInterval + 2 s; writer RSS < 150 MiB. Workers run with
 * NODE_OPTIONS=--max-semi-space-size=2 as the image sets it (BENCH_WORKER_NODE_OPTIONS overrides).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
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

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const RATES = (process.env.BENCH_DELTA_RATES ?? '500,2000').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_DELTA_SECONDS ?? 40);
const FLUSH = process.env.BENCH_DELTA_FLUSH ?? '10s';
const FLUSH_MS = parseDuration(FLUSH) ?? 10_000;
// Random text: compresses far less than Kubernetes objects do, so stored sizes are an upper bound.
const VALUES = Array.from({ length: 64 }, () => randomBytes(768).toString('base64'));
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
  // As the image runs it (Dockerfile): a 2 MiB young generation.
  env.NODE_OPTIONS = process.env.BENCH_WORKER_NODE_OPTIONS ?? '--max-semi-space-size=2';
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

    // Several connections: one client's single HTTP/2 connection caps the put rate here.
    const clients = Array.from({ length: 4 }, () => new Etcd3({ hosts: [etcd.endpoint] }));
    closers.push(() => clients.forEach((c) => c.close()));
    console.log(
      `delta log RPO, ${SECONDS}s per rate, 1 KiB values, flushInterval ${FLUSH}, maxSegmentBytes 8 MiB (default)`,
    );
    console.log(
      'rate/s  achieved/s  puts    segments  p50 s   p99 s   max s   p99/(flush+2s)  writer CPU  baseline CPU  writer RSS peak  baseline RSS peak',
    );
    for (const rate of RATES) {
      const acks: { revision: number; at: number }[] = [];
      const w0 = await usage(writer.child.pid ?? 0);
      const b0 = await usage(baseline.child.pid ?? 0);
      let wPeak = w0.rssMiB;
      let bPeak = b0.rssMiB;
      const sampler = setInterval(() => {
        void usage(writer.child.pid ?? 0).then((u) => (wPeak = Math.max(wPeak, u.rssMiB)));
        void usage(baseline.child.pid ?? 0).then((u) => (bPeak = Math.max(bPeak, u.rssMiB)));
      }, 200);
      const started = Date.now();
      const tickMs = 10;
      const inFlight = new Set<Promise<void>>();
      let sent = 0;
      for (let tick = 0; Date.now() - started < SECONDS * 1000; tick++) {
        const due = Math.floor(((tick + 1) * tickMs * rate) / 1000);
        for (; sent < due; sent++) {
          const p = (clients[sent % clients.length] as Etcd3)
            .put(`/registry/bench/k${sent % 5000}`)
            .value(VALUES[sent % VALUES.length] as string)
            .exec()
            .then((res) => {
              acks.push({ revision: Number(res.header.revision), at: Date.now() });
            })
            .finally(() => inFlight.delete(p));
          inFlight.add(p);
        }
        const next = started + (tick + 1) * tickMs;
        await sleep(Math.max(0, next - Date.now()));
      }
      await Promise.all(inFlight);
      const elapsed = (Date.now() - started) / 1000;
      const lastRevision = Math.max(...acks.map((a) => a.revision));
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
      const segs = published.filter((p) => p.last >= Math.min(...acks.map((a) => a.revision))).length;
      const p99 = percentile(delays, 99);
      console.log(
        [
          String(rate).padEnd(6),
          (acks.length / elapsed).toFixed(0).padEnd(10),
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
      // Keep etcd small between rates.
      await etcd.client.kv.compact({ revision: String(lastRevision) }).catch(() => undefined);
      await sleep(FLUSH_MS + 1_000);
    }
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
