/**
 * The ChangeRecorder every trigger source calls. `record()` only touches memory: triggers are
 * grouped by debounce window and flushed to Redis at most every `flushIntervalMs` (at once for a
 * window this process has not enqueued yet), so a burst of a thousand events costs a handful of
 * Redis commands. While Redis is unreachable the groups stay in memory, coalesced into one, and
 * are flushed when it is back.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config/index.js';
import type { TriggerSource } from '../cause.js';
import { messageOf } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { connectRedis, describeRedis } from './connection.js';
import type { Change, ChangeRecorder, SnapshotJobData } from './contract.js';
import { ledgerKeys, MAX_SAMPLES, recordInLedger, type Counts } from './ledger.js';
import { boundSample } from './sample.js';
import { createSnapshotQueue, enqueueManual, JOB_NAME, type ManualCause, type SnapshotQueue } from './queue.js';
import { windowJobDelay, windowJobId, windowOf, type DebounceWindow } from './window.js';

export interface QueueRecorderOptions {
  config: Pick<Config, 'cluster' | 'redis' | 'queue'>;
  log?: Logger;
  metrics?: Pick<Metrics, 'pendingTriggers' | 'redisUp'>;
  /** Clock, for tests. */
  now?: () => Date;
  /** Longest time a trigger waits in memory before it is counted in Redis. */
  flushIntervalMs?: number;
  /**
   * How long after its window's end a job starts, so that the window's last triggers are
   * flushed before its snapshot begins. Default: twice the flush interval.
   */
  settleMs?: number;
  /** A producer connection to share; by default the recorder opens (and closes) its own. */
  connection?: Redis;
  /**
   * How often windows this process enqueued are checked against Redis until their snapshot is
   * done, which is also when the recorder forgets them. Reconnects check at once.
   */
  verifyIntervalMs?: number;
}

export interface RecorderStatus {
  /** Whether the last exchange with Redis succeeded. */
  redisUp: boolean;
  /** Triggers in memory not yet safely enqueued. */
  pendingTriggers: number;
  /** Debounce windows those triggers belong to. */
  pendingWindows: number;
}

export interface QueueRecorder extends ChangeRecorder {
  readonly queue: SnapshotQueue;
  /** A snapshot as soon as possible (source manual); rejects when Redis cannot take the job. */
  enqueueNow(cause?: ManualCause): Promise<string>;
  status(): RecorderStatus;
  /** Sends what is in memory now; never rejects (failures keep the triggers pending). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Triggers of one debounce window counted in memory: per source, a few samples, the first source. */
interface WindowTally {
  window: DebounceWindow;
  counts: Counts;
  samples: string[];
  first: TriggerSource;
  total: number;
}

/** A window whose job this process added and whose snapshot it has not seen done. */
interface AwaitingSnapshot {
  window: DebounceWindow;
  generation: number;
  counts: Counts;
  samples: string[];
  first: TriggerSource;
  total: number;
}

/** A window counted in the Redis ledger (at `generation`) whose job this process has still to add. */
interface AwaitingJob {
  window: DebounceWindow;
  generation: number;
  data: SnapshotJobData;
  total: number;
}

/**
 * Two clocks, on purpose: `options.now` places triggers in debounce windows (the triggers' time,
 * injectable for tests); this one paces the recorder's own timers, which run in real time
 * whatever `now` says, and is monotonic so a wall-clock step cannot stall or rush a flush.
 */
function timerClock(): number {
  return performance.now();
}

export function createQueueRecorder(options: QueueRecorderOptions): QueueRecorder {
  return new Recorder(options);
}

class Recorder implements QueueRecorder {
  readonly queue: SnapshotQueue;
  private readonly redis: Redis;
  private readonly ownsConnection: boolean;
  private readonly now: () => Date;
  private readonly flushIntervalMs: number;
  private readonly settleMs: number;
  private readonly cluster: string;
  private readonly prefix: string;
  private readonly windowMs: number;

  /*
   * A trigger's way, one map per state:
   *   record() -> uncounted (memory only) -> flush counts it in the ledger -> awaitingJob
   *   -> the job is added -> jobAdded (hot-path cache) + awaitingSnapshot -> the job is done: forgotten.
   * While Redis is unreachable everything stays or goes back in `uncounted`, coalesced into one
   * tally; if Redis comes back without a job of `awaitingSnapshot`, its counts go back there too.
   */
  /** Triggers not yet counted in Redis, by window id. */
  private uncounted = new Map<string, WindowTally>();
  /** Counted in the ledger, but the job of their generation may not exist yet; by job id. */
  private readonly awaitingJob = new Map<string, AwaitingJob>();
  /** The generation whose job this process has added, by window id: the hot-path cache. */
  private readonly jobAdded = new Map<string, { generation: number; end: number }>();
  /** Windows whose triggers the running flush is sending (their job is being added). */
  private sending = new Set<string>();
  /**
   * What this process counted, by job id, until its snapshot is done: when Redis comes back
   * empty (restarted without persistence, a failover to a replica that missed the writes) the
   * job and the ledger are gone, and this is what recreates them.
   */
  private readonly awaitingSnapshot = new Map<string, AwaitingSnapshot>();
  private readonly verifyIntervalMs: number;
  private verifyDue = false;
  /** When awaitingSnapshot was last checked against Redis, on the timer clock. */
  private lastVerify = timerClock();
  private runId: string | undefined;
  /** The window of the last trigger: most triggers fall in it, and computing its id formats a date. */
  private current: DebounceWindow | undefined;
  /** Triggers in uncounted and awaitingJob: what a Redis loss now could still cost. */
  private pendingTotal = 0;
  /** Whether the last exchange with Redis succeeded. */
  private redisUp = false;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = Infinity;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: QueueRecorderOptions) {
    const { config } = options;
    this.now = options.now ?? (() => new Date());
    this.flushIntervalMs = options.flushIntervalMs ?? 1_000;
    this.settleMs = options.settleMs ?? 2 * this.flushIntervalMs;
    this.cluster = config.cluster;
    this.prefix = config.redis.prefix;
    this.windowMs = config.queue.debounceWindow;
    this.verifyIntervalMs = options.verifyIntervalMs ?? 30_000;
    this.ownsConnection = options.connection === undefined;
    this.redis = options.connection ?? connectRedis(config.redis, 'producer');
    this.redisUp = this.redis.status === 'ready';
    this.redis.on('error', () => undefined);
    this.redis.on('ready', () => {
      // Redis may have restarted empty: jobs this process added may be gone, so add them again.
      this.jobAdded.clear();
      this.verifyDue = this.awaitingSnapshot.size > 0;
      this.setRedisUp(true);
      void this.noteRunId();
      this.schedule(0);
    });
    this.redis.on('close', () => this.setRedisUp(false));
    this.queue = createSnapshotQueue(config, this.redis);
    this.report();
  }

  record(input: Change): void {
    try {
      if (this.closed) return;
      // Bounded here so that every source is: the text comes from request bodies and etcd keys.
      const change = input.resource === undefined ? input : { ...input, resource: boundSample(input.resource) };
      const window = this.windowAt(this.now().getTime());
      let group = this.uncounted.get(window.id);
      if (group === undefined) {
        group = { window, counts: {}, samples: [], first: change.source, total: 0 };
        this.uncounted.set(window.id, group);
        if (!this.redisUp) this.coalesce();
      }
      const target = this.uncounted.get(window.id) ?? this.newest();
      add(target, change);
      this.pendingTotal += 1;
      this.report();
      // Flush at once for a window whose job is not on its way yet; otherwise within the interval.
      const onItsWay = this.jobAdded.has(window.id) || this.sending.has(window.id);
      this.schedule(onItsWay ? this.flushIntervalMs : 0);
    } catch (err) {
      // The admission webhook calls this on the apiserver's request path: never throw.
      this.options.log?.error({ err: messageOf(err) }, 'recording a change failed');
    }
  }

  async enqueueNow(cause: ManualCause = {}): Promise<string> {
    try {
      const bounded = cause.resource === undefined ? cause : { ...cause, resource: boundSample(cause.resource) };
      return await enqueueManual(this.queue, this.cluster, bounded, this.now);
    } catch (err) {
      throw new Error(
        `enqueueing a snapshot failed: Redis at ${describeRedis(this.options.config.redis)}: ${messageOf(err)}`,
        { cause: err },
      );
    }
  }

  status(): RecorderStatus {
    return {
      redisUp: this.redisUp,
      pendingTriggers: this.pendingTotal,
      pendingWindows: this.uncounted.size + this.awaitingJob.size,
    };
  }

  flush(): Promise<void> {
    this.clearTimer();
    const run = this.chain
      .then(() => this.flushOnce())
      .catch((err: unknown) => this.options.log?.error({ err: messageOf(err) }, 'flushing triggers failed'));
    this.chain = run;
    return run;
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    this.clearTimer();
    await this.queue.close().catch(() => undefined);
    if (this.ownsConnection) await this.redis.quit().catch(() => this.redis.disconnect());
  }

  /** While Redis is away, one snapshot after the newest window covers every older one: keep one group. */
  private coalesce(): void {
    const target = this.newest();
    for (const [id, group] of this.uncounted) {
      if (group === target) continue;
      merge(target, group);
      this.uncounted.delete(id);
    }
  }

  private newest(): WindowTally {
    let best: WindowTally | undefined;
    for (const g of this.uncounted.values()) if (best === undefined || g.window.start > best.window.start) best = g;
    if (best === undefined) throw new Error('no pending window');
    return best;
  }

  private windowAt(atMs: number): DebounceWindow {
    const c = this.current;
    if (c !== undefined && atMs >= c.start && atMs < c.end) return c;
    this.current = windowOf(atMs, this.windowMs);
    return this.current;
  }

  private async flushOnce(): Promise<void> {
    if (
      this.redisUp &&
      this.awaitingSnapshot.size > 0 &&
      (this.verifyDue || timerClock() - this.lastVerify >= this.verifyIntervalMs)
    )
      await this.verify();
    if (this.uncounted.size === 0 && this.awaitingJob.size === 0) {
      if (this.awaitingSnapshot.size > 0) this.schedule(this.verifyIntervalMs);
      return;
    }
    const groups = [...this.uncounted.values()].sort((a, b) => a.window.start - b.window.start);
    this.uncounted = new Map();
    this.sending = new Set(groups.map((g) => g.window.id));
    try {
      await this.sendGroups(groups);
    } finally {
      this.sending = new Set();
    }
  }

  private async sendGroups(groups: WindowTally[]): Promise<void> {
    let failed = false;
    for (const group of groups) {
      if (failed) {
        this.putBack(group);
        continue;
      }
      try {
        const generation = await recordInLedger(
          this.redis,
          this.prefix,
          this.cluster,
          group.window,
          group.counts,
          group.samples,
        );
        this.noteCounted(group, generation);
      } catch (err) {
        failed = true;
        this.putBack(group);
        this.setRedisUp(false, err);
      }
    }
    if (!failed) {
      for (const [jobId, u] of this.awaitingJob) {
        try {
          const delay = windowJobDelay(u.window, this.now().getTime(), this.settleMs);
          await this.queue.add(JOB_NAME, u.data, { jobId, delay });
          this.jobAdded.set(u.window.id, { generation: u.generation, end: u.window.end });
          this.trackUntilSnapshot(jobId, u);
          this.awaitingJob.delete(jobId);
          this.pendingTotal -= u.total;
        } catch (err) {
          failed = true;
          this.setRedisUp(false, err);
          break;
        }
      }
    }
    if (!failed) this.setRedisUp(true);
    if (!this.redisUp && this.uncounted.size > 1) this.coalesce();
    this.prune();
    this.report();
    if (this.uncounted.size > 0 || this.awaitingJob.size > 0) this.schedule(this.flushIntervalMs);
    else if (this.awaitingSnapshot.size > 0) this.schedule(this.verifyIntervalMs);
  }

  private trackUntilSnapshot(jobId: string, u: AwaitingJob): void {
    const known = this.awaitingSnapshot.get(jobId);
    const counts = u.data.causes;
    if (known) {
      mergeCounts(known.counts, counts);
      known.total += u.total;
      mergeSamples(known.samples, u.data.samples);
      return;
    }
    this.awaitingSnapshot.set(jobId, {
      window: u.window,
      generation: u.generation,
      counts: { ...counts },
      samples: [...u.data.samples],
      first: u.data.source ?? 'audit',
      total: u.total,
    });
  }

  /**
   * Checks the windows this process enqueued: a finished job is forgotten; a job missing while its
   * ledger generation is still open (or the ledger is gone too) was lost with Redis's memory, so
   * its triggers go back to pending and are counted and enqueued again.
   */
  private async verify(): Promise<void> {
    this.verifyDue = false;
    this.lastVerify = timerClock();
    let lost = 0;
    for (const [jobId, r] of [...this.awaitingSnapshot]) {
      let state: string;
      let open: number;
      try {
        state = await this.queue.getJobState(jobId);
        const [ledger] = ledgerKeys(this.prefix, this.cluster, r.window);
        open = Number((await this.redis.hget(ledger, 'gen')) ?? '0');
      } catch (err) {
        this.verifyDue = true;
        this.setRedisUp(false, err);
        return;
      }
      if (state === 'completed' || state === 'failed') {
        this.awaitingSnapshot.delete(jobId);
        continue;
      }
      if (state !== 'unknown') continue;
      // Gone with its generation closed: it ran and was trimmed (keepJobs) or was folded into another.
      if (open > r.generation) {
        this.awaitingSnapshot.delete(jobId);
        continue;
      }
      this.awaitingSnapshot.delete(jobId);
      this.jobAdded.delete(r.window.id);
      this.putBack({
        window: r.window,
        counts: { ...r.counts },
        samples: [...r.samples],
        first: r.first,
        total: r.total,
      });
      this.pendingTotal += r.total;
      lost += 1;
    }
    // One snapshot after the newest of them covers every lost window, as after an outage.
    if (lost > 0) this.coalesce();
    if (lost > 0)
      this.options.log?.warn(
        { redis: describeRedis(this.options.config.redis), windows: lost, pendingTriggers: this.pendingTotal },
        'snapshot jobs this process enqueued are gone from Redis (restarted empty?); enqueueing them again',
      );
    this.report();
  }

  /** Redis's run_id changes when the server restarts: then everything not persisted is gone. */
  private async noteRunId(): Promise<void> {
    try {
      const info = await this.redis.info('server');
      const id = /^run_id:(\w+)/m.exec(info)?.[1];
      if (id === undefined) return;
      if (this.runId !== undefined && id !== this.runId)
        this.options.log?.warn(
          { redis: describeRedis(this.options.config.redis), unfinishedWindows: this.awaitingSnapshot.size },
          'redis restarted; checking the snapshot jobs this process enqueued',
        );
      this.runId = id;
    } catch {
      // INFO may be renamed or refused (managed Redis): the job check on reconnect covers it.
    }
  }

  private noteCounted(group: WindowTally, generation: number): void {
    if (this.jobAdded.get(group.window.id)?.generation === generation) {
      this.pendingTotal -= group.total;
      const known = this.awaitingSnapshot.get(windowJobId(this.cluster, group.window, generation));
      if (known) {
        mergeCounts(known.counts, group.counts);
        known.total += group.total;
        mergeSamples(known.samples, group.samples);
      }
      return;
    }
    const jobId = windowJobId(this.cluster, group.window, generation);
    const existing = this.awaitingJob.get(jobId);
    if (existing) {
      mergeCounts(existing.data.causes, group.counts);
      existing.total += group.total;
      return;
    }
    this.awaitingJob.set(jobId, {
      window: group.window,
      generation,
      total: group.total,
      data: {
        cluster: this.cluster,
        window: group.window.id,
        causes: { ...group.counts },
        samples: [...group.samples],
        source: group.first,
        generation,
      },
    });
  }

  private putBack(group: WindowTally): void {
    const current = this.uncounted.get(group.window.id);
    if (current) merge(current, group);
    else this.uncounted.set(group.window.id, group);
  }

  private setRedisUp(up: boolean, err?: unknown): void {
    if (up === this.redisUp || this.closed) return;
    this.redisUp = up;
    if (!up) this.jobAdded.clear();
    const log = this.options.log;
    if (up)
      log?.info(
        { redis: describeRedis(this.options.config.redis), pendingTriggers: this.pendingTotal },
        'redis reachable',
      );
    else
      log?.warn(
        { redis: describeRedis(this.options.config.redis), err: err === undefined ? undefined : messageOf(err) },
        'redis unreachable; keeping triggers in memory',
      );
    this.report();
  }

  private report(): void {
    this.options.metrics?.pendingTriggers.set(this.pendingTotal);
    this.options.metrics?.redisUp.set(this.redisUp ? 1 : 0);
  }

  /** Forgets windows no trigger of this process can fall into any more. */
  private prune(): void {
    const horizon = this.now().getTime() - 2 * this.windowMs - this.settleMs;
    for (const [id, a] of this.jobAdded) if (a.end < horizon) this.jobAdded.delete(id);
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    const due = timerClock() + delayMs;
    if (this.timer !== undefined && this.timerDue <= due) return;
    this.clearTimer();
    this.timerDue = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDue = Infinity;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
  }
}

function add(group: WindowTally, change: Change): void {
  group.counts[change.source] = (group.counts[change.source] ?? 0) + 1;
  group.total += 1;
  if (change.resource && group.samples.length < MAX_SAMPLES && !group.samples.includes(change.resource))
    group.samples.push(change.resource);
}

function merge(into: WindowTally, from: WindowTally): void {
  mergeCounts(into.counts, from.counts);
  into.total += from.total;
  for (const s of from.samples)
    if (into.samples.length < MAX_SAMPLES && !into.samples.includes(s)) into.samples.push(s);
  if (from.window.start < into.window.start) into.first = from.first;
}

function mergeSamples(into: string[], from: string[]): void {
  for (const s of from) if (into.length < MAX_SAMPLES && !into.includes(s)) into.push(s);
}

function mergeCounts(into: Counts, from: Counts): void {
  for (const [source, n] of Object.entries(from) as [TriggerSource, number][]) into[source] = (into[source] ?? 0) + n;
}
