/**
 * Fault matrix for the queue: each scenario sends triggers to a real Redis, etcd and file store,
 * injects one fault, waits for the queue to drain and prints what happened. `lost` is triggers
 * sent minus triggers counted in published manifests; `piled` is snapshots published after the
 * last trigger beyond the running one plus one.
 *
 *   npx tsx bench/faults.ts [scenario ...]
 *
 * Scenarios:
 * - redis-restart-empty: Redis SIGKILLed and restarted without its data, delayed jobs waiting;
 * - redis-restart-persisted: the same with an append-only file (fsync always), as the chart's Redis;
 * - store-down-past-budget: the store fails 10 uploads in a row (more than the old 5-attempt budget);
 * - etcd-kill: etcd SIGKILLed during the traffic and restarted on its data 3 s later;
 * - worker-abandoned: the worker pool closed mid-snapshot (SIGTERM's path), another takes over;
 * - worker-kill: real worker processes, the one taking the snapshot SIGKILLed mid-upload;
 * - slow-snapshots: 2 s snapshots on 0.5 s windows.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import { createQueueRecorder, windowOf, type QueueRecorder } from '../core/queue/index.js';
import { startWorkerPool, type WorkerPool } from '../worker/pool.js';
import type { PutOptions } from '../worker/stores/store.js';
import { MANIFEST_SUFFIX } from '../worker/manifest.js';
import type { Manifest } from '../worker/manifest.js';
import { GatedStore, startStack, waitIdle, type Stack } from '../test/support/queue-stack.js';
import { startEtcd } from '../test/support/etcd.js';
import { freePort } from '../test/support/ports.js';
import { tempDir } from '../test/support/tmp.js';
import type { CliProcess } from '../test/support/processes.js';
import { auditBatch, fillRandom, postJson, startE2eStack, waitQueueIdle } from '../test/e2e/stack.js';

interface Outcome {
  scenario: string;
  triggers: number;
  windows: number;
  snapshots: number;
  lost: number;
  piled: number;
  seconds: number;
}

/** A store whose snapshot uploads each take `delayMs` longer. */
class SlowStore extends GatedStore {
  constructor(
    inner: ConstructorParameters<typeof GatedStore>[0],
    private readonly delayMs: number,
  ) {
    super(inner);
  }
  override async put(key: string, body: Readable, options?: PutOptions): Promise<{ size: number }> {
    if (!key.endsWith(MANIFEST_SUFFIX)) await sleep(this.delayMs);
    return super.put(key, body, options);
  }
}

interface Traffic {
  sent: number;
  windows: Set<string>;
  last: number;
}

async function traffic(
  recorder: QueueRecorder,
  windowMs: number,
  durationMs: number,
  everyMs: number,
): Promise<Traffic> {
  const t: Traffic = { sent: 0, windows: new Set(), last: 0 };
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    t.last = Date.now();
    t.windows.add(windowOf(t.last, windowMs).id);
    recorder.record({ source: 'audit', resource: `ns/pod-${t.sent % 11}`, at: new Date() });
    t.sent += 1;
    await sleep(everyMs);
  }
  await recorder.flush();
  return t;
}

async function outcome(
  scenario: string,
  stack: Pick<Stack, 'manifests'>,
  t: Traffic,
  startedMs: number,
): Promise<Outcome> {
  const manifests = await stack.manifests();
  const counted = manifests
    .flatMap((m) => Object.values(m.cause.counts ?? {}))
    .reduce((a: number, b: number) => a + b, 0);
  const after = manifests.filter((m) => Date.parse(m.createdAt) > t.last).length;
  return {
    scenario,
    triggers: t.sent,
    windows: t.windows.size,
    snapshots: manifests.length,
    lost: Math.max(0, t.sent - counted),
    piled: Math.max(0, after - 2),
    seconds: Math.round((Date.now() - startedMs) / 100) / 10,
  };
}

type Scenario = (stack: Stack) => Promise<Outcome>;

/** Triggers recorded, then Redis SIGKILLed and restarted while their delayed job waits. */
async function redisRestart(name: string, stack: Stack): Promise<Outcome> {
  const WINDOW = 4_000;
  const config = stack.config({ debounceWindow: WINDOW });
  const started = Date.now();
  const recorder = createQueueRecorder({ config, flushIntervalMs: 100, settleMs: 300 });
  const pool = await startWorkerPool({ config, store: stack.store, log: stack.log, lockRetryMs: 200 });
  try {
    await recorder.queue.waitUntilReady();
    const t = await traffic(recorder, WINDOW, 500, 50);
    await stack.redis.kill();
    await stack.redis.restart();
    await sleep(WINDOW);
    await waitIdle(recorder.queue, 120_000);
    return await outcome(name, stack, t, started);
  } finally {
    await pool.close();
    await recorder.close();
  }
}

/** Scenarios that start their own servers and processes instead of the in-process stack. */
const standalone: Record<string, () => Promise<Outcome>> = {
  async 'worker-kill'() {
    const WINDOW = 1_000;
    const e2e = await startE2eStack({ holdProxy: true });
    const proxy = e2e.proxy;
    if (!proxy) throw new Error('no proxy');
    try {
      // About 3 MiB of random data: the snapshot streams past the point where the proxy holds it.
      await fillRandom(e2e.etcd.client, 300, 10 * 1024);
      const webhook = await e2e.processes.start('webhook', e2e.flags({ windowMs: WINDOW }), { name: 'webhook' });
      const workerFlags = e2e.flags({ windowMs: WINDOW, endpoint: proxy.endpoint });
      const workers = await Promise.all(
        ['a', 'b'].map((n) => e2e.processes.start('worker', workerFlags, { name: `worker-${n}` })),
      );
      const started = Date.now();
      const holding = proxy.holdNext(512 * 1024);
      const t: Traffic = { sent: 0, windows: new Set(), last: 0 };
      const send = (async () => {
        for (let i = 0; Date.now() - started < 4_000; i++) {
          const res = await postJson(`${webhook.url}/audit`, auditBatch(5, `kill-${i}`));
          if (res.status !== 200) throw new Error(`audit answered ${res.status}`);
          t.last = Date.now();
          t.windows.add(windowOf(t.last, WINDOW).id);
          t.sent += 5;
          await sleep(100);
        }
      })();
      await holding;
      const victim = workers.find((w: CliProcess) => w.logs().some((l) => l.msg === 'snapshot starting'));
      if (!victim) throw new Error(`no worker is snapshotting\n${e2e.describe()}`);
      await victim.kill();
      proxy.release();
      await send;
      await sleep(WINDOW);
      // The killed worker's job counts as active until its lock (10 s) expires and it is found stalled.
      await waitQueueIdle(e2e.queue(), 'the queue to drain', 180_000);
      return await outcome('worker-kill', { manifests: (): Promise<Manifest[]> => e2e.list() }, t, started);
    } finally {
      await e2e.stop();
    }
  },
};

const scenarios: Record<string, Scenario> = {
  'redis-restart-empty': (stack) => redisRestart('redis-restart-empty', stack),
  'redis-restart-persisted': (stack) => redisRestart('redis-restart-persisted', stack),
  async 'etcd-kill'(stack) {
    const WINDOW = 1_000;
    const dir = await tempDir('faults-etcd');
    const clientPort = await freePort();
    let etcd = await startEtcd({ dataDir: dir.path, clientPort });
    const base = stack.config({ debounceWindow: WINDOW, attempts: 0, backoff: 200, backoffMax: 1_000 });
    const config = { ...base, etcd: { ...base.etcd, endpoints: [etcd.endpoint], dialTimeout: 1_000 } };
    const started = Date.now();
    const recorder = createQueueRecorder({ config, flushIntervalMs: 100, settleMs: 300 });
    const pool = await startWorkerPool({ config, store: stack.store, log: stack.log, lockRetryMs: 200 });
    try {
      await recorder.queue.waitUntilReady();
      const sending = traffic(recorder, WINDOW, 5_000, 50);
      await sleep(1_500);
      const exited = new Promise((resolve) => etcd.process.once('exit', resolve));
      etcd.kill();
      await exited;
      await sleep(3_000);
      etcd = await startEtcd({ dataDir: dir.path, clientPort });
      const t = await sending;
      await sleep(WINDOW);
      await waitIdle(recorder.queue, 120_000);
      return await outcome('etcd-kill', stack, t, started);
    } finally {
      await pool.close();
      await recorder.close();
      await etcd.stop();
      await dir.remove();
    }
  },
  async 'store-down-past-budget'(stack) {
    const WINDOW = 1_000;
    const config = stack.config({ debounceWindow: WINDOW, attempts: 0, backoff: 100, backoffMax: 500 });
    const store = new GatedStore(stack.store);
    store.failNext = 10;
    const started = Date.now();
    const recorder = createQueueRecorder({ config, flushIntervalMs: 100, settleMs: 300 });
    const pool = await startWorkerPool({ config, store, log: stack.log, lockRetryMs: 200 });
    try {
      await recorder.queue.waitUntilReady();
      const t = await traffic(recorder, WINDOW, 1_500, 50);
      await sleep(WINDOW);
      await waitIdle(recorder.queue, 120_000);
      return await outcome('store-down-past-budget', stack, t, started);
    } finally {
      await pool.close();
      await recorder.close();
    }
  },
  async 'worker-abandoned'(stack) {
    const WINDOW = 1_000;
    const config = stack.config({ debounceWindow: WINDOW });
    const store = new GatedStore(stack.store);
    const held = store.hold();
    const started = Date.now();
    const recorder = createQueueRecorder({ config, flushIntervalMs: 100, settleMs: 300 });
    const first = await startWorkerPool({ config, store, log: stack.log, lockRetryMs: 200, graceMs: 100 });
    let second: WorkerPool | undefined;
    try {
      await recorder.queue.waitUntilReady();
      const t = await traffic(recorder, WINDOW, 1_500, 50);
      await held.started;
      // SIGTERM's path: the running snapshot is abandoned and its job left for another worker.
      await first.close();
      second = await startWorkerPool({ config, store: stack.store, log: stack.log, lockRetryMs: 200 });
      await sleep(WINDOW);
      await waitIdle(recorder.queue, 120_000);
      return await outcome('worker-abandoned', stack, t, started);
    } finally {
      held.release();
      await first.close();
      await second?.close();
      await recorder.close();
    }
  },
  async 'slow-snapshots'(stack) {
    const WINDOW = 500;
    const config = stack.config({ debounceWindow: WINDOW });
    const started = Date.now();
    const recorder = createQueueRecorder({ config, flushIntervalMs: 100, settleMs: 200 });
    const pool = await startWorkerPool({
      config,
      store: new SlowStore(stack.store, 2_000),
      log: stack.log,
      lockRetryMs: 200,
    });
    try {
      await recorder.queue.waitUntilReady();
      const t = await traffic(recorder, WINDOW, 6_000, 50);
      await sleep(WINDOW);
      await waitIdle(recorder.queue, 120_000);
      return await outcome('slow-snapshots', stack, t, started);
    } finally {
      await pool.close();
      await recorder.close();
    }
  },
};

const known = [...Object.keys(scenarios), ...Object.keys(standalone)];
const chosen = process.argv.slice(2).length > 0 ? process.argv.slice(2) : known;
const results: Outcome[] = [];
for (const name of chosen) {
  const alone = standalone[name];
  if (alone) {
    results.push(await alone());
    continue;
  }
  const run = scenarios[name];
  if (!run) throw new Error(`unknown scenario "${name}"; known: ${known.join(', ')}`);
  const persist = name === 'redis-restart-persisted' ? await tempDir('faults-redis') : undefined;
  const stack = await startStack(persist ? { persistDir: persist.path } : {});
  try {
    results.push(await run(stack));
  } finally {
    await stack.stop();
    await persist?.remove();
  }
}
console.table(results);
