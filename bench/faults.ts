/**
 * Fault matrix for the queue: each scenario sends triggers through a recorder to a real Redis,
 * etcd and file store, injects one fault, waits for the queue to drain and prints what happened.
 * `lost` is triggers sent minus triggers counted in published manifests; `piled` is snapshots
 * published after the last trigger beyond the running one plus one.
 *
 *   npx tsx bench/faults.ts [scenario ...]
 *
 * Scenarios: redis-restart-empty, store-down-past-budget, worker-abandoned, slow-snapshots.
 * Not covered here: Redis restart with persistence and etcd kill/restart (the test helpers start
 * Redis without persistence and cannot restart an etcd member).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import { createQueueRecorder, windowOf, type QueueRecorder } from '../core/queue/index.js';
import { startWorkerPool, type WorkerPool } from '../worker/pool.js';
import type { PutOptions } from '../worker/stores/store.js';
import { MANIFEST_SUFFIX } from '../worker/manifest.js';
import { GatedStore, startStack, waitIdle, type Stack } from '../test/support/queue-stack.js';

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

async function outcome(scenario: string, stack: Stack, t: Traffic, startedMs: number): Promise<Outcome> {
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

const scenarios: Record<string, Scenario> = {
  async 'redis-restart-empty'(stack) {
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
      return await outcome('redis-restart-empty', stack, t, started);
    } finally {
      await pool.close();
      await recorder.close();
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

const chosen = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(scenarios);
const results: Outcome[] = [];
for (const name of chosen) {
  const run = scenarios[name];
  if (!run) throw new Error(`unknown scenario "${name}"; known: ${Object.keys(scenarios).join(', ')}`);
  const stack = await startStack();
  try {
    results.push(await run(stack));
  } finally {
    await stack.stop();
  }
}
console.table(results);
