import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { configSchema } from '../../core/config/index.js';
import { createQueueRecorder, UNLIMITED_ATTEMPTS, windowOf, type QueueRecorder } from '../../core/queue/index.js';
import { startRedis } from '../support/redis.js';

test('hot path: a burst costs a few Redis commands per window and flush, not one per change', async () => {
  const redis = await startRedis();
  const recorders: QueueRecorder[] = [];
  const monitorClient = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true });
  monitorClient.on('error', () => undefined);
  const markerClient = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true });
  markerClient.on('error', () => undefined);
  try {
    const WINDOW = 1_000;
    const FLUSH = 250;
    const config = configSchema.parse({ cluster: 'hot', redis: { url: redis.url }, queue: { debounceWindow: WINDOW } });
    for (let i = 0; i < 3; i++) recorders.push(createQueueRecorder({ config, flushIntervalMs: FLUSH }));
    await Promise.all(recorders.map((r) => r.queue.waitUntilReady()));

    // MONITOR shows each command a client sends; commands run inside a script are marked `lua`
    // and are not round trips, so they are not counted.
    await monitorClient.connect();
    const monitor = await monitorClient.monitor();
    // MONITOR reports commands in the order Redis ran them, so a PING with a marker argument is a
    // barrier: once it is seen, so is every command any client sent before it.
    const sent: string[] = [];
    let counting = false;
    const markers = new Map<string, () => void>();
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      const marker = String(args[0]).toLowerCase() === 'ping' ? markers.get(String(args[1])) : undefined;
      if (marker) marker();
      else if (counting && source !== 'lua') sent.push(String(args[0]).toLowerCase());
    });
    // Connected before counting starts, so its handshake is not counted.
    await markerClient.connect();
    const barrier = async (name: string) => {
      const seen = new Promise<void>((resolve) => markers.set(name, resolve));
      await markerClient.ping(name);
      await seen;
    };
    await barrier('start');
    counting = true;

    const EVENTS = 3_000;
    const windows = new Set<string>();
    const started = Date.now();
    for (let i = 0; i < EVENTS; i++) {
      windows.add(windowOf(Date.now(), WINDOW).id);
      (recorders[i % 3] as QueueRecorder).record({ source: 'audit', resource: `ns/pod-${i % 13}`, at: new Date() });
      if (i % 100 === 99) await sleep(50);
    }
    await Promise.all(recorders.map((r) => r.flush()));
    const elapsed = Date.now() - started;
    await barrier('end');
    counting = false;
    monitor.disconnect();

    const flushes = Math.ceil(elapsed / FLUSH) + 1;
    // Per recorder: per window a ledger call and a job add (each perhaps loading its script),
    // plus one ledger call per periodic flush.
    const budget = recorders.length * (windows.size * 4 + flushes + windows.size);
    assert.ok(
      sent.length <= budget,
      `${sent.length} commands for ${EVENTS} changes over ${windows.size} windows (budget ${budget}): ${sent.join(' ')}`,
    );
    assert.ok(sent.length < EVENTS / 20);
    assert.ok(
      sent.every((c) => c === 'evalsha' || c === 'eval'),
      sent.join(' '),
    );
    for (const r of recorders) assert.deepEqual(r.status(), { redisUp: true, pendingTriggers: 0, pendingWindows: 0 });
    const jobs = await (recorders[0] as QueueRecorder).queue.getJobs(['delayed', 'waiting']);
    assert.deepEqual(jobs.map((j) => j.data.window).sort(), [...windows].sort(), 'one job per window');
  } finally {
    monitorClient.disconnect();
    markerClient.disconnect();
    for (const r of recorders) await r.close();
    await redis.stop();
  }
});

test('a change record() cannot place is logged and dropped, not thrown at the caller nor left half-counted', async () => {
  const redis = await startRedis();
  const config = configSchema.parse({ redis: { url: redis.url } });
  const lines: { msg?: string; err?: string }[] = [];
  const log = pino({ level: 'error' }, { write: (line: string) => void lines.push(JSON.parse(line) as never) });
  const recorder = createQueueRecorder({ config, log, now: () => new Date(Number.NaN) });
  try {
    recorder.record({ source: 'audit', at: new Date() }); // throwing here fails the test
    assert.deepEqual(
      lines.map((l) => l.msg),
      ['recording a change failed'],
      'the failure is logged for the operator',
    );
    assert.equal(recorder.status().pendingTriggers, 0, 'nothing half-recorded is waiting');
    assert.equal(recorder.status().pendingWindows, 0);
  } finally {
    await recorder.close();
    await redis.stop();
  }
});

test('enqueueNow adds a manual job that runs at once', async () => {
  const redis = await startRedis();
  const config = configSchema.parse({ cluster: 'c1', redis: { url: redis.url } });
  const recorder = createQueueRecorder({ config });
  try {
    const id = await recorder.enqueueNow({ resource: 'cli' });
    const job = await recorder.queue.getJob(id);
    assert.ok(job);
    assert.equal(await job.getState(), 'waiting');
    assert.deepEqual(job.data.causes, { manual: 1 });
    assert.deepEqual(job.data.samples, ['cli']);
    assert.equal(job.data.source, 'manual');
    assert.equal(job.opts.attempts, UNLIMITED_ATTEMPTS, 'queue.attempts 0: retried until it succeeds');
  } finally {
    await recorder.close();
    await redis.stop();
  }
});
