/**
 * `npm run bench` (webhook part): real `etcd-autobackup webhook` processes on real Redis, loaded
 * over keep-alive loopback connections the way a kube-apiserver would:
 *
 * - audit ingestion: EventLists of 400 events (the apiserver's default batch size), a few
 *   connections each with one batch in flight; sustained events/s and per-batch latency;
 * - admission: AdmissionReviews at a steady rate; requests/s and latency;
 * - Redis commands per debounce window per webhook process while events flow, from
 *   `INFO commandstats` before and after: the recorder should cost a handful per window, not one
 *   per event.
 *
 * Then it checks that Redis counted every trigger that was sent (nothing lost for speed).
 *
 * Env: BENCH_WEBHOOKS (processes, default 1), BENCH_AUDIT_BATCHES (default 3000),
 * BENCH_AUDIT_WARMUP (batches, default 100), BENCH_AUDIT_BATCH_SIZE (default 400),
 * BENCH_AUDIT_CONCURRENCY (connections, default 4), BENCH_ADMISSION_RATES (req/s, comma-separated, default 1000,2000),
 * BENCH_ADMISSION_SECONDS (default 10), BENCH_DEBOUNCE (debounce window, default 2s),
 * BENCH_MAX_SECONDS (bound on each timed phase, default 60), BENCH_CLI_JS (the CLI compiled to
 * JS; without it the CLI runs under tsx), BENCH_WEBHOOK_NODE_ARGS (extra node flags for the
 * webhook processes, e.g. --cpu-prof --cpu-prof-dir=/tmp/prof or --trace-gc), BENCH_WEBHOOK_LOG
 * (file prefix: each webhook's output goes to <prefix>.<port>), BENCH_WEBHOOK_CONFIG (a config file for the
 * webhook processes, e.g. one setting webhook.auditDecodeThreads).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { parseDuration } from '../core/duration.js';
import { freePort, waitFor } from '../test/support/ports.js';
import { startRedis, type RedisServer } from '../test/support/redis.js';
import { admissionReview, auditBatch, type Batch } from './audit-batch.js';
import { closedLoop, openLoop, quantile, type Answer, type LoadResult, type OpenLoopResult } from './http-load.js';

const TARGET_EVENTS_PER_SEC = 150_000;
const TARGET_AUDIT_P99_MS = 50;
/** Admission p99 against the bare node:http floor's p99 measured in the same run (issue 11). */
const TARGET_ADMISSION_P99_RATIO = 2;
/**
 * "A handful per window, not one per event": the recorder sends a window's triggers at most once
 * a second (one script call), plus the window's job once. Round trips are what the webhook sends;
 * INFO commandstats also counts each command its scripts run inside Redis (about 5-10 per call).
 */
const TARGET_ROUND_TRIPS_PER_WINDOW = 10;
/** Calls per event, script-internal ones included: far below one. */
const TARGET_CALLS_PER_EVENT = 0.05;
/** Admission rounds alternate floor and webhook in slices this long, so both meet the same neighbours. */
const SLICE_SECONDS = 2;
const CLUSTER = 'bench';
const REDIS_PREFIX = 'etcd-autobackup';
/** The recorder's flush interval: the last triggers reach Redis at most this long after arriving. */
const FLUSH_MS = 1_000;

function envInt(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min} (got "${raw}")`);
  return n;
}

const ms = (x: number): string => `${x.toFixed(2)} ms`;
const int = (x: number): string => Math.round(x).toLocaleString('en-US');
const verdict = (ok: boolean): string => (ok ? 'MET' : 'NOT MET');

interface Webhook {
  url: URL;
  pid: number;
  output: () => string;
  stop: () => Promise<void>;
}

async function startWebhook(redis: RedisServer, debounce: string): Promise<Webhook> {
  const port = await freePort();
  const cli = process.env.BENCH_CLI_JS;
  const nodeArgs = (process.env.BENCH_WEBHOOK_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const entry = cli ? [cli] : ['--import', 'tsx', join(import.meta.dirname, '..', 'cli', 'main.ts')];
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_AUTOBACKUP_')) env[k] = v;
  const args = [
    ...nodeArgs,
    ...entry,
    'webhook',
    '--listen',
    `127.0.0.1:${port}`,
    '--redis-url',
    redis.url,
    '--cluster',
    CLUSTER,
    '--debounce-window',
    debounce,
    '--log-level',
    'warn',
    ...(process.env.BENCH_WEBHOOK_CONFIG ? ['--config', process.env.BENCH_WEBHOOK_CONFIG] : []),
  ];
  const child: ChildProcess = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const log = process.env.BENCH_WEBHOOK_LOG ? createWriteStream(`${process.env.BENCH_WEBHOOK_LOG}.${port}`) : undefined;
  const keep = (d: Buffer) => {
    log?.write(d);
    output = (output + d.toString()).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = once(child, 'exit');
  void exited.then(() => log?.end());
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  const url = new URL(`http://127.0.0.1:${port}`);
  try {
    await waitFor(
      'the webhook process to be ready',
      async () => {
        if (child.exitCode !== null) throw new Error(`it exited with ${child.exitCode}`);
        return (await fetch(new URL('/readyz', url))).status === 200;
      },
      60_000,
      200,
    );
  } catch (err) {
    await stop();
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nwebhook output:\n${output}`, { cause: err });
  }
  return { url, pid: child.pid ?? 0, output: () => output, stop };
}

/** The bare node:http floor (bench/floor-server.ts) in its own process. */
async function startFloor(): Promise<{ url: URL; stop: () => void }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'floor-server.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      child.once('exit', (code) => reject(new Error(`the floor server exited with ${code}`)));
      setTimeout(() => reject(new Error('the floor server did not start in 30 s')), 30_000).unref();
    });
    return { url: new URL(line), stop };
  } catch (err) {
    stop();
    throw err;
  }
}

/** CPU time (user + system) a process has used, in ms, from /proc. */
async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100 Hz on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** CPU time all processes on the machine have used, in ms, from /proc/stat (idle and iowait excluded). */
async function machineCpuMs(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '';
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) * 10;
}

interface CpuReading {
  machine: number;
  webhooks: number[];
  redis: number;
  bench: number;
}

async function cpuReading(hooks: readonly Webhook[], redisPid: number): Promise<CpuReading> {
  const usage = process.cpuUsage();
  return {
    machine: await machineCpuMs(),
    webhooks: await Promise.all(hooks.map((h) => cpuMs(h.pid))),
    redis: await cpuMs(redisPid),
    bench: (usage.user + usage.system) / 1000,
  };
}

/** Where the CPU went during a phase, as % of one core; "others" is everything not in this benchmark. */
function cpuLine(before: CpuReading, after: CpuReading, wallMs: number): string {
  const pct = (x: number) => `${((x / wallMs) * 100).toFixed(0)}%`;
  const hooks = after.webhooks.map((c, i) => c - (before.webhooks[i] ?? 0));
  const redis = after.redis - before.redis;
  const bench = after.bench - before.bench;
  const machine = after.machine - before.machine;
  const others = Math.max(0, machine - hooks.reduce((a, b) => a + b, 0) - redis - bench);
  return `CPU (% of one core, ${cpus().length} cores): webhook ${hooks.map(pct).join(' + ')}, load generator ${pct(bench)}, redis ${pct(redis)}, other processes on the machine ${pct(others)}`;
}

/** Event-loop delay and GC of the webhook processes since the last scrape (prom-client resets the delay histogram when scraped). */
async function loopStats(hooks: readonly Webhook[]): Promise<{ p99: number; max: number; gcMs: number }[]> {
  return Promise.all(
    hooks.map(async (h) => {
      const text = await (await fetch(new URL('/metrics', h.url))).text();
      const value = (series: string) => Number(new RegExp(`^${series} ([0-9.e+-]+)`, 'm').exec(text)?.[1] ?? NaN);
      let gc = 0;
      for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum\{[^}]*\} ([0-9.e+-]+)/gm)) gc += Number(m[1]);
      // prom-client samples the delay with a 10 ms timer; what is above that is the real delay.
      return {
        p99: value('nodejs_eventloop_lag_p99_seconds') * 1000 - 10,
        max: value('nodejs_eventloop_lag_max_seconds') * 1000 - 10,
        gcMs: gc * 1000,
      };
    }),
  );
}

/**
 * What Redis saw: `INFO commandstats` (every call, those a script makes inside Redis included)
 * and MONITOR, which tells the commands the webhook sent (round trips) from those its scripts ran
 * (source "lua"). This connection's own INFO and SCAN calls are left out of both.
 */
class RedisTally {
  private monitor: Redis | undefined;
  private sent = new Map<string, number>();
  private inScripts = 0;

  /** The redis-server process, for its CPU time. */
  redisPid = 0;

  private constructor(private readonly conn: Redis) {}

  static async open(redis: RedisServer): Promise<RedisTally> {
    const conn = new Redis({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: 1 });
    conn.on('error', () => undefined);
    const tally = new RedisTally(conn);
    tally.redisPid = Number(/^process_id:(\d+)/m.exec(String(await conn.info('server')))?.[1] ?? 0);
    // MONITOR names a command's client by the address Redis sees it at.
    const addr = /(?:^| )addr=(\S+)/.exec(String(await conn.client('INFO')))?.[1];
    tally.monitor = await conn.monitor();
    tally.monitor.on('error', () => undefined);
    tally.monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source === addr) return;
      if (source === 'lua') tally.inScripts += 1;
      else {
        const name = String(args[0] ?? '?').toLowerCase();
        tally.sent.set(name, (tally.sent.get(name) ?? 0) + 1);
      }
    });
    return tally;
  }

  async reading(): Promise<Reading> {
    const info = String(await this.conn.info('commandstats'));
    const calls = new Map<string, number>();
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1] as string, Number(m[2]));
    return { calls, sent: new Map(this.sent), inScripts: this.inScripts };
  }

  /** Triggers of `source` counted in all window ledgers of the cluster. */
  async counted(source: string): Promise<number> {
    let total = 0;
    for await (const keys of this.conn.scanStream({
      match: `${REDIS_PREFIX}:ledger:${CLUSTER}:*`,
      count: 1000,
    }) as AsyncIterable<string[]>) {
      for (const key of keys.filter((k) => !k.endsWith(':samples')))
        total += Number((await this.conn.hget(key, `n:${source}`)) ?? 0);
    }
    return total;
  }

  async close(): Promise<void> {
    this.monitor?.disconnect();
    await this.conn.quit().catch(() => this.conn.disconnect());
  }
}

interface Reading {
  /** INFO commandstats: calls per command, since the server started. */
  calls: Map<string, number>;
  /** MONITOR: commands sent by clients other than this tally, since it started. */
  sent: Map<string, number>;
  /** MONITOR: commands scripts ran inside Redis. */
  inScripts: number;
}

interface Cost {
  /** INFO commandstats difference, less this tally's own INFO calls. */
  total: number;
  /** Round trips from the webhook processes, by command. */
  sent: Map<string, number>;
  inScripts: number;
}

function cost(before: Reading, after: Reading): Cost {
  let total = 0;
  for (const [name, n] of after.calls) total += n - (before.calls.get(name) ?? 0);
  // The "after" INFO is counted once it has run, so only the "before" one falls in between.
  total -= 1;
  const sent = new Map<string, number>();
  for (const [name, n] of after.sent)
    if (n > (before.sent.get(name) ?? 0)) sent.set(name, n - (before.sent.get(name) ?? 0));
  return { total, sent, inScripts: after.inScripts - before.inScripts };
}

const sum = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

/** Debounce windows (epoch-aligned, like the recorder's) that [fromMs, toMs] touches. */
function windowsSpanned(fromMs: number, toMs: number, windowMs: number): number {
  return Math.floor(toMs / windowMs) - Math.floor(fromMs / windowMs) + 1;
}

function latencyLine(r: LoadResult): string {
  const l = r.latencies;
  return `p50 ${ms(quantile(l, 0.5))}, p90 ${ms(quantile(l, 0.9))}, p99 ${ms(quantile(l, 0.99))}, max ${ms(Math.max(...l))}`;
}

interface Phase {
  windows: number;
  cost: Cost;
  wallMs: number;
  /** Where the CPU went. */
  cpu: string;
  /** Event-loop delay and GC time in each webhook process during the load. */
  loop: string;
}

/** Runs `load`, then waits for the recorders' last flush, and reads what it cost Redis and the processes. */
async function measured<T>(
  tally: RedisTally,
  hooks: Webhook[],
  windowMs: number,
  load: () => Promise<T>,
): Promise<{ result: T; phase: Phase }> {
  const loopBefore = await loopStats(hooks);
  const cpuBefore = await cpuReading(hooks, tally.redisPid);
  const before = await tally.reading();
  const from = Date.now();
  const result = await load();
  const loadEnd = Date.now();
  const cpuAfter = await cpuReading(hooks, tally.redisPid);
  const loopAfter = await loopStats(hooks);
  // Triggers of the load's last moments are flushed within FLUSH_MS; count those commands too.
  await new Promise((r) => setTimeout(r, FLUSH_MS + 500));
  const after = await tally.reading();
  return {
    result,
    phase: {
      windows: windowsSpanned(from, loadEnd + FLUSH_MS, windowMs),
      cost: cost(before, after),
      wallMs: loadEnd - from,
      cpu: cpuLine(cpuBefore, cpuAfter, loadEnd - from),
      loop: loopAfter
        .map(
          (l, i) =>
            `event-loop delay (beyond prom-client's 10 ms sampling timer) p99 ${ms(l.p99)}, max ${ms(l.max)}; GC ${ms(l.gcMs - (loopBefore[i]?.gcMs ?? 0))} in all`,
        )
        .join('; '),
    },
  };
}

interface PerWindow {
  total: number;
  sent: number;
  perEvent: number;
  text: string;
}

function perWindow(phase: Phase, processes: number, events: number): PerWindow {
  const { total, sent, inScripts } = phase.cost;
  const per = (n: number) => n / phase.windows / processes;
  const roundTrips = sum(sent);
  const top = [...sent]
    .sort((a, b) => b[1] - a[1])
    .map(([c, n]) => `${c} ${n}`)
    .join(', ');
  return {
    total: per(total),
    sent: per(roundTrips),
    perEvent: total / Math.max(1, events),
    text: [
      `${phase.windows} windows x ${processes} process(es)`,
      `INFO commandstats: ${total} calls = ${per(total).toFixed(1)} per window per process (${((total / Math.max(1, events)) * 1000).toFixed(3)} per 1000 events)`,
      `MONITOR: ${roundTrips} round trips from the webhook = ${per(roundTrips).toFixed(1)} per window per process (${top || 'none'}), which ran ${inScripts} commands inside Redis`,
    ].join('\n  '),
  };
}

async function main(): Promise<void> {
  const processes = envInt('BENCH_WEBHOOKS', 1);
  const batchSize = envInt('BENCH_AUDIT_BATCH_SIZE', 400);
  const batches = envInt('BENCH_AUDIT_BATCHES', 3000);
  const warmupBatches = envInt('BENCH_AUDIT_WARMUP', 100, 0);
  const concurrency = envInt('BENCH_AUDIT_CONCURRENCY', 4);
  const rates = (process.env.BENCH_ADMISSION_RATES ?? '1000,2000').split(',').map((r) => {
    const n = Number(r);
    if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_ADMISSION_RATES must list integers >= 1 (got "${r}")`);
    return n;
  });
  const admissionSeconds = envInt('BENCH_ADMISSION_SECONDS', 10);
  const maxMs = envInt('BENCH_MAX_SECONDS', 60) * 1000;
  const debounce = process.env.BENCH_DEBOUNCE || '2s';
  const windowMs = parseDuration(debounce);
  if (windowMs === undefined || windowMs <= 0)
    throw new Error(`BENCH_DEBOUNCE must be a duration above 0 like 2s or 500ms (got "${debounce}")`);
  const cpu = cpus();

  console.log('== machine');
  console.log(`cores: ${cpu.length} x ${cpu[0]?.model ?? '?'}`);
  console.log(`memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB, linux ${release()}`);
  console.log(
    `node: ${process.version}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} at start`,
  );
  console.log(
    `webhook: ${processes} process(es), ${process.env.BENCH_CLI_JS ? 'compiled JS (plain node)' : 'tsx'}${process.env.BENCH_WEBHOOK_NODE_ARGS ? `, node ${process.env.BENCH_WEBHOOK_NODE_ARGS}` : ''}; debounce window ${debounce}; load generator in this process on the same cores`,
  );

  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
  };
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));

  const verdicts: string[] = [];
  let failed: boolean;
  try {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const tally = await RedisTally.open(redis);
    cleanups.push(() => tally.close());
    const hooks: Webhook[] = [];
    for (let i = 0; i < processes; i++) {
      const hook = await startWebhook(redis, debounce);
      cleanups.push(() => hook.stop());
      hooks.push(hook);
    }
    const target = (path: string) => (i: number) => new URL(path, (hooks[i % hooks.length] as Webhook).url);

    // A handful of distinct bodies, built before the clock starts, so the client stays cheap.
    const bodies: Batch[] = Array.from({ length: 16 }, (_, i) => auditBatch(i, batchSize));
    const checkAudit = (answer: Answer, i: number): string | undefined => {
      const want = bodies[i % bodies.length] as Batch;
      const got = JSON.parse(answer.body) as { events?: number; triggers?: number };
      return got.events === want.events && got.triggers === want.triggers
        ? undefined
        : `batch ${i}: answered ${answer.body}, expected ${want.events} events, ${want.triggers} triggers`;
    };
    const auditLoad = (requests: number) =>
      closedLoop({
        url: target('/audit'),
        concurrency,
        requests,
        maxMs,
        body: (i) => (bodies[i % bodies.length] as Batch).body,
        check: checkAudit,
      });

    console.log(
      `\n== audit ingestion: ${batches} batches of ${batchSize} events (${int(batches * batchSize)} events), ${concurrency} keep-alive connections, after ${warmupBatches} warm-up batches`,
    );
    console.log(
      `batch body ${((bodies[0]?.body.length ?? 0) / 1024) | 0} KiB; ${bodies[0]?.triggers ?? 0} of ${batchSize} events are triggers under the default filters`,
    );
    let auditTriggersSent = 0;
    if (warmupBatches > 0) {
      const warm = await auditLoad(warmupBatches);
      if (warm.errors > 0)
        throw new Error(`audit warm-up: ${warm.errors} failed batches, first: ${warm.firstError ?? '?'}`);
      auditTriggersSent += sentTriggers(warm.latencies.length, bodies);
    }
    const audit = await measured(tally, hooks, windowMs, () => auditLoad(batches));
    const a = audit.result;
    auditTriggersSent += sentTriggers(a.latencies.length, bodies);
    const auditEvents = a.latencies.length * batchSize;
    const eventsPerSec = auditEvents / (a.elapsedMs / 1000);
    const auditP99 = quantile(a.latencies, 0.99);
    console.log(
      `${a.latencies.length} batches answered in ${(a.elapsedMs / 1000).toFixed(2)} s: ${int(eventsPerSec)} events/s (${(a.latencies.length / (a.elapsedMs / 1000)).toFixed(0)} batches/s)`,
    );
    console.log(`batch latency: ${latencyLine(a)}`);
    console.log(audit.phase.cpu);
    console.log(`webhook: ${audit.phase.loop}`);
    if (a.errors > 0) console.log(`errors: ${a.errors}, first: ${a.firstError ?? '?'}`);
    if (a.unsent > 0) console.log(`stopped by the ${maxMs / 1000} s bound with ${a.unsent} batches unsent`);
    const auditCmds = perWindow(audit.phase, processes, auditEvents);
    console.log(`redis: ${auditCmds.text}`);
    const auditCounted = await tally.counted('audit');
    const auditLossless = auditCounted === auditTriggersSent;
    console.log(
      `redis counted ${int(auditCounted)} audit triggers of ${int(auditTriggersSent)} sent${auditLossless ? '' : ' (MISMATCH)'}`,
    );

    const reviews = Array.from({ length: 64 }, (_, i) => admissionReview(i));
    const checkAdmission = (answer: Answer, i: number): string | undefined =>
      answer.body.includes('"allowed":true') &&
      answer.body.includes(
        (JSON.parse((reviews[i % reviews.length] as Buffer).toString()) as { request: { uid: string } }).request.uid,
      )
        ? undefined
        : `review ${i}: answered ${answer.body.slice(0, 200)}`;
    const floor = await startFloor();
    cleanups.push(() => Promise.resolve(floor.stop()));
    let admissionSent = 0;
    const admissions: { rate: number; p99: number; p50: number; floorP99: number; errors: number; perEvent: number }[] =
      [];
    for (const rate of rates) {
      console.log(
        `\n== admission: ${rate} req/s for ${admissionSeconds} s (open loop), after 2 s of warm-up at that rate`,
      );
      const admissionLoad = (seconds: number) =>
        openLoop({
          url: target('/admission'),
          ratePerSec: rate,
          durationMs: Math.min(seconds * 1000, maxMs),
          maxSockets: 16,
          body: (i) => reviews[i % reviews.length] as Buffer,
          check: checkAdmission,
        });
      const floorLoad = (seconds: number) =>
        openLoop({
          url: () => new URL('/admission', floor.url),
          ratePerSec: rate,
          durationMs: Math.min(seconds * 1000, maxMs),
          maxSockets: 16,
          body: (i) => reviews[i % reviews.length] as Buffer,
          check: checkAdmission,
        });
      // Floor and webhook take turns in short slices, so that both meet the same neighbours.
      await floorLoad(2);
      const warmAdmission = await admissionLoad(2);
      if (warmAdmission.errors > 0)
        throw new Error(`admission warm-up: ${warmAdmission.errors} failed, first: ${warmAdmission.firstError ?? '?'}`);
      const floorSlices: OpenLoopResult[] = [];
      const admission = await measured(tally, hooks, windowMs, async () => {
        const slices: OpenLoopResult[] = [];
        for (let left = admissionSeconds; left > 0; left -= SLICE_SECONDS) {
          const seconds = Math.min(SLICE_SECONDS, left);
          floorSlices.push(await floorLoad(seconds));
          slices.push(await admissionLoad(seconds));
        }
        return merge(slices);
      });
      const floorResult = merge(floorSlices);
      console.log(
        `floor (bare node:http + JSON.parse, same load, alternating ${SLICE_SECONDS} s slices with the webhook): ${latencyLine(floorResult)}; sender at most ${ms(floorResult.maxSendLagMs)} behind schedule`,
      );
      const d = admission.result;
      console.log(
        `webhook: ${d.latencies.length} of ${d.sent} answered in ${(d.elapsedMs / 1000).toFixed(2)} s of load: ${(d.latencies.length / (d.elapsedMs / 1000)).toFixed(0)} req/s; sender at most ${ms(d.maxSendLagMs)} behind schedule`,
      );
      console.log(
        '(the CPU and Redis figures below span the floor slices too, so per-window counts are diluted; per-event counts are not)',
      );
      console.log(`webhook latency: ${latencyLine(d)}`);
      console.log(admission.phase.cpu);
      console.log(`webhook: ${admission.phase.loop}`);
      if (d.errors > 0) console.log(`errors: ${d.errors}, first: ${d.firstError ?? '?'}`);
      const admissionCmds = perWindow(admission.phase, processes, d.latencies.length);
      console.log(`redis: ${admissionCmds.text}`);
      admissionSent += warmAdmission.latencies.length + d.latencies.length;
      admissions.push({
        rate,
        p99: quantile(d.latencies, 0.99),
        p50: quantile(d.latencies, 0.5),
        floorP99: quantile(floorResult.latencies, 0.99),
        errors: d.errors,
        perEvent: admissionCmds.perEvent,
      });
    }
    const admissionCounted = await tally.counted('admission');
    const admissionLossless = admissionCounted === admissionSent;
    console.log(
      `redis counted ${int(admissionCounted)} admission triggers of ${int(admissionSent)} sent${admissionLossless ? '' : ' (MISMATCH)'}`,
    );

    const auditOk = a.errors === 0 && a.unsent === 0;
    verdicts.push(
      `audit ingestion >= ${int(TARGET_EVENTS_PER_SEC)} events/s: ${verdict(auditOk && eventsPerSec >= TARGET_EVENTS_PER_SEC)} (${int(eventsPerSec)} events/s)`,
      `audit batch p99 < ${TARGET_AUDIT_P99_MS} ms: ${verdict(auditOk && auditP99 < TARGET_AUDIT_P99_MS)} (${ms(auditP99)})`,
      ...admissions.map(
        (r) =>
          `admission p99 within ${TARGET_ADMISSION_P99_RATIO}x the bare node:http floor's at ${r.rate} req/s: ${verdict(r.errors === 0 && r.p99 <= TARGET_ADMISSION_P99_RATIO * r.floorP99)} (${(r.p99 / r.floorP99).toFixed(2)}x: p99 ${ms(r.p99)} against ${ms(r.floorP99)}, p50 ${ms(r.p50)})`,
      ),
      `redis commands per ${debounce} window per process, a handful, not one per event (<= ${TARGET_ROUND_TRIPS_PER_WINDOW} round trips, < ${TARGET_CALLS_PER_EVENT} calls per event): ${verdict(auditCmds.sent <= TARGET_ROUND_TRIPS_PER_WINDOW && Math.max(auditCmds.perEvent, ...admissions.map((r) => r.perEvent)) < TARGET_CALLS_PER_EVENT)} (during audit at ${int(eventsPerSec)} events/s: INFO commandstats ${auditCmds.total.toFixed(1)} calls/window = ${auditCmds.perEvent.toFixed(5)}/event, ${auditCmds.sent.toFixed(1)} round trips/window; during admission: ${Math.max(...admissions.map((r) => r.perEvent)).toFixed(3)} calls/event)`,
      `every trigger counted in redis: ${verdict(auditLossless && admissionLossless)} (audit ${int(auditCounted)}/${int(auditTriggersSent)}, admission ${int(admissionCounted)}/${int(admissionSent)})`,
    );
    failed = a.errors > 0 || admissions.some((r) => r.errors > 0) || !auditLossless || !admissionLossless;
  } finally {
    await cleanup();
  }
  console.log('\n== targets');
  for (const v of verdicts) console.log(v);
  if (failed) process.exitCode = 1;
}

function merge(results: readonly OpenLoopResult[]): OpenLoopResult {
  return {
    latencies: results.flatMap((r) => r.latencies),
    errors: results.reduce((a, r) => a + r.errors, 0),
    firstError: results.find((r) => r.firstError)?.firstError,
    elapsedMs: results.reduce((a, r) => a + r.elapsedMs, 0),
    unsent: results.reduce((a, r) => a + r.unsent, 0),
    sent: results.reduce((a, r) => a + r.sent, 0),
    maxSendLagMs: Math.max(0, ...results.map((r) => r.maxSendLagMs)),
  };
}

/** Triggers in the first `n` batches sent (batch i uses body i mod bodies). */
function sentTriggers(n: number, bodies: readonly Batch[]): number {
  let total = 0;
  for (let i = 0; i < n; i++) total += (bodies[i % bodies.length] as Batch).triggers;
  return total;
}

main().catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
