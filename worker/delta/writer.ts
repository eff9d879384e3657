/**
 * The delta-log writer (docs/delta-log.md): one per cluster at a time, across every worker
 * process (a Redis lock; another worker takes over when the holder dies). The leader watches
 * etcd's whole keyspace from where the log ends and stores every event as segments of whole
 * revisions, each one published within `delta.flushInterval` of its first event, or earlier at
 * `delta.maxSegmentBytes`.
 *
 * Memory: one segment filling and at most one being stored. When the filling one is full while
 * the store is still busy with the previous one (a slow or failing store), the watch is stopped
 * and opened again from the next revision once the store caught up: a slow store slows the
 * watch, it never grows the buffer. etcd keeps the history meanwhile (until it compacts it).
 *
 * Gaps are never papered over: when etcd compacted past the writer's position, or a segment of
 * the chain is missing, the gap is recorded, counted, a full snapshot is enqueued at once, and a
 * new chain starts right after that snapshot's revision.
 */
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import type { Redis } from 'ioredis';
import type { Config } from '../../core/config/index.js';
import { etcdClientOptions } from '../../core/etcd-client.js';
import { messageOf } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import {
  connectRedis,
  createSnapshotQueue,
  deltaLockKey,
  enqueueManual,
  keepLock,
  tryLock,
  type HeldLock,
  type SnapshotQueue,
} from '../../core/queue/index.js';
import { listSnapshots } from '../catalog.js';
import { chooseMember } from '../etcd-members.js';
import type { Manifest } from '../manifest.js';
import type { Store } from '../stores/store.js';
import { readDeltaLogEnd } from './catalog.js';
import { isCompacted, KeyspaceWatch } from './keyspace-watch.js';
import { DELTA_FORMAT, type DeltaEvent, type DeltaGap, type DeltaManifest } from './segment.js';
import { SegmentBuilder, writeGap, writeSegment, type SegmentContent } from './segment-write.js';
import { afterSnapshot, decideStart, type StartPoint } from './start-point.js';

export type DeltaMetrics = Pick<
  Metrics,
  | 'deltaLag'
  | 'deltaSegments'
  | 'deltaEvents'
  | 'deltaStoredBytes'
  | 'deltaGaps'
  | 'deltaLeader'
  | 'deltaBuffered'
  | 'deltaWriteFailures'
>;

export interface DeltaWriterOptions {
  config: Pick<Config, 'cluster' | 'etcd' | 'snapshot' | 'encryption' | 'redis' | 'queue' | 'delta'>;
  store: Store;
  log: Logger;
  /** @defaultValue no metrics */
  metrics?: DeltaMetrics;
  /**
   * Lifetime of the writer lock: how soon another worker takes over from a dead writer.
   * @defaultValue config.queue.lockDuration
   */
  lockDurationMs?: number;
  /**
   * How often a worker that is not the writer tries to take the lock.
   * @defaultValue a third of the lock's lifetime
   */
  lockRetryMs?: number;
  /**
   * How often the store is listed while waiting for the full snapshot a gap needs.
   * @defaultValue 2000
   */
  snapshotPollMs?: number;
  /**
   * Asks for a full snapshot (a gap, or no snapshot to start from); returns the job id.
   * @defaultValue a manual job on the snapshot queue
   */
  requestSnapshot?: (reason: string) => Promise<string>;
}

export interface DeltaWriter {
  /** True while this process holds the writer lock and follows etcd. */
  readonly leader: boolean;
  /** Most event bytes held in memory at once since start (buffer plus the segment being stored). */
  readonly peakBufferedBytes: number;
  /** Stops: the buffered events are stored first (within queue.shutdownGrace), then the lock is released. */
  close(): Promise<void>;
}

/** Store retries: doubling from the first to the last. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;
const LAG_EVERY_MS = 1_000;

interface WriterStats {
  peakBufferedBytes: number;
}

export function startDeltaWriter(options: DeltaWriterOptions): DeltaWriter {
  const writer = new Writer(options);
  writer.start();
  return writer;
}

class Writer implements DeltaWriter {
  private readonly stopping = new AbortController();
  private readonly redis: Redis;
  private readonly queue: SnapshotQueue;
  private readonly owner = `${hostname()}/${process.pid}`;
  private readonly lockMs: number;
  private running: Promise<void> = Promise.resolve();
  private session: Session | undefined;
  private readonly stats: WriterStats = { peakBufferedBytes: 0 };

  constructor(private readonly options: DeltaWriterOptions) {
    const { config } = options;
    this.lockMs = options.lockDurationMs ?? config.queue.lockDuration;
    this.redis = connectRedis(config.redis, 'producer');
    this.redis.on('error', () => undefined);
    this.queue = createSnapshotQueue(config, this.redis);
  }

  get leader(): boolean {
    return this.session !== undefined;
  }

  get peakBufferedBytes(): number {
    return this.stats.peakBufferedBytes;
  }

  start(): void {
    this.running = this.loop().catch((err: unknown) =>
      this.options.log.error({ err: messageOf(err) }, 'delta log: writer stopped unexpectedly'),
    );
  }

  async close(): Promise<void> {
    if (this.stopping.signal.aborted) return this.running;
    this.stopping.abort(new Error('worker stopping'));
    this.session?.stop('shutdown');
    await this.running;
    await this.queue.close().catch(() => undefined);
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private async loop(): Promise<void> {
    const { config, log, metrics } = this.options;
    const cluster = config.cluster;
    const retryMs = this.options.lockRetryMs ?? Math.max(250, Math.floor(this.lockMs / 3));
    metrics?.deltaLeader.set({ cluster }, 0);
    metrics?.deltaLag.set({ cluster }, 0);
    let term = 0;
    let previousEnd: string | undefined;
    while (!this.stopping.signal.aborted) {
      let lock: HeldLock | undefined;
      try {
        lock = await tryLock(this.redis, deltaLockKey(config.redis.prefix, cluster), this.lockMs, this.owner);
      } catch (err) {
        log.debug({ err: messageOf(err) }, 'delta log: cannot reach Redis for the writer lock');
      }
      if (!lock) {
        await this.pause(retryMs);
        continue;
      }
      const session = new Session(this.options, this.requestSnapshot, this.stopping.signal, this.stats);
      this.session = session;
      term++;
      metrics?.deltaLeader.set({ cluster }, 1);
      // A term after the first says why the previous one ended: two "start point" lines in one
      // process are then explained by the line before them.
      log.info(
        { owner: this.owner, term, ...(previousEnd ? { after: previousEnd } : {}) },
        'delta log: this worker is the writer',
      );
      const renewal = keepLock(
        lock,
        this.lockMs,
        () => session.stop('lock-lost'),
        (err) => log.warn({ err: messageOf(err) }, 'delta log: renewing the writer lock failed'),
      );
      let failed = false;
      try {
        await session.run();
      } catch (err) {
        failed = true;
        if (!session.stopped) log.error({ err: messageOf(err) }, 'delta log: the writer failed; starting over');
      } finally {
        clearInterval(renewal);
        this.session = undefined;
        metrics?.deltaLeader.set({ cluster }, 0);
        // Only the leader reports a lag: a stale figure here would alert on the max over workers.
        metrics?.deltaLag.set({ cluster }, 0);
        if (session.stopReason !== 'lock-lost') await lock.release().catch(() => undefined);
      }
      previousEnd = failed && session.stopReason === undefined ? 'failed' : (session.stopReason ?? 'ended');
      if (session.stopReason === 'lock-lost') log.warn('delta log: lost the writer lock; another worker may write now');
      if (failed || session.stopReason === 'lock-lost') await this.pause(retryMs);
    }
  }

  private readonly requestSnapshot = (reason: string): Promise<string> =>
    this.options.requestSnapshot?.(reason) ??
    enqueueManual(this.queue, this.options.config.cluster, { resource: `delta-log: ${reason}` });

  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stopping.signal }).catch(() => undefined);
  }
}

type StopReason = 'shutdown' | 'lock-lost';

/** One leadership term: decide where to start, then follow etcd until stopped. */
class Session {
  private readonly abort = new AbortController();
  stopReason: StopReason | undefined;
  private follower: Follower | undefined;

  constructor(
    private readonly options: DeltaWriterOptions,
    private readonly requestSnapshot: (reason: string) => Promise<string>,
    parent: AbortSignal,
    private readonly stats: WriterStats,
  ) {
    if (parent.aborted) this.stop('shutdown');
    else parent.addEventListener('abort', () => this.stop('shutdown'), { once: true });
  }

  get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  stop(reason: StopReason): void {
    if (this.stopped) return;
    this.stopReason = reason;
    this.abort.abort(new Error(reason));
    this.follower?.stop(reason === 'shutdown');
  }

  async run(): Promise<void> {
    const { config, store, log } = this.options;
    const cluster = config.cluster;
    const end = await readDeltaLogEnd(store, cluster, {
      onInvalid: (key, problem) => log.warn({ key, problem }, 'delta log: unusable record left out'),
    });
    const snapshots = await listSnapshots(store, cluster);
    let start: StartPoint = decideStart({
      ...end,
      snapshots,
      now: new Date().toISOString(),
    });
    log.info({ decision: start.kind, why: start.why }, 'delta log: start point');
    for (;;) {
      if (this.stopped) return;
      if (start.kind === 'snapshot') {
        start = await this.newChain(start);
        continue;
      }
      const etcd = await this.memberFacts();
      const client = new Etcd3(etcdClientOptions(config.etcd, config.etcd.endpoints));
      try {
        const state = await isCompacted(client, start.next);
        if (state.compacted) {
          start = this.compactedGap(start.next, state.current);
          continue;
        }
        this.follower = new Follower(this.options, client, start.chain, start.next, etcd, this.stats);
        if (this.stopped) this.follower.stop(this.stopReason === 'shutdown');
        const ended = await this.follower.run();
        if (ended.kind === 'stopped') return;
        start = this.compactedGap(ended.next, ended.current);
      } finally {
        this.follower = undefined;
        client.close();
      }
    }
  }

  private compactedGap(from: number, current: number): StartPoint {
    const now = new Date().toISOString();
    return {
      kind: 'snapshot',
      notBefore: now,
      gap: {
        fromRevision: from,
        reason: 'compacted',
        detail: `etcd compacted its history past revision ${from} (current revision ${current}) before the writer read it`,
        detectedAt: now,
      },
      why: `etcd history compacted past revision ${from}`,
    };
  }

  /** Records the gap, enqueues a full snapshot, waits for it: the new chain starts after it. */
  private async newChain(need: Extract<StartPoint, { kind: 'snapshot' }>): Promise<StartPoint> {
    const { config, store, log, metrics } = this.options;
    const cluster = config.cluster;
    let gap: DeltaGap | undefined;
    if (need.gap) {
      gap = { format: DELTA_FORMAT, cluster, ...need.gap };
      await retryUntilDone(() => writeGap(store, gap as DeltaGap), 'recording the gap', log, this.abort.signal);
      metrics?.deltaGaps.inc({ cluster, reason: gap.reason });
      log.warn(
        { fromRevision: gap.fromRevision, reason: gap.reason, detail: gap.detail },
        'delta log: gap recorded; a full snapshot is enqueued and a new chain starts after it',
      );
    }
    const jobId = await retryUntilDone(
      () => this.requestSnapshot(need.why),
      'enqueuing a snapshot',
      log,
      this.abort.signal,
    );
    log.info({ jobId, why: need.why }, 'delta log: waiting for a full snapshot to start a new chain from');
    const snapshot = await this.waitForSnapshot(need.notBefore);
    if (gap) {
      const closed: DeltaGap = { ...gap, toRevision: Math.max(gap.fromRevision, snapshot.etcd.revision) };
      await retryUntilDone(() => writeGap(store, closed), 'recording the gap', log, this.abort.signal);
    }
    return afterSnapshot(snapshot, `new chain after snapshot ${snapshot.id}`);
  }

  private async waitForSnapshot(notBefore: string): Promise<Manifest> {
    const { config, store, log } = this.options;
    const poll = this.options.snapshotPollMs ?? 2_000;
    let lastLog = Date.now();
    for (;;) {
      this.abort.signal.throwIfAborted();
      try {
        const found = (await listSnapshots(store, config.cluster)).find((s) => s.createdAt >= notBefore);
        if (found) return found;
      } catch (err) {
        log.debug({ err: messageOf(err) }, 'delta log: listing snapshots failed; trying again');
      }
      if (Date.now() - lastLog > 60_000) {
        lastLog = Date.now();
        log.warn('delta log: still waiting for the full snapshot a new chain needs (see the snapshot jobs)');
      }
      await sleep(poll, undefined, { signal: this.abort.signal });
    }
  }

  private async memberFacts(): Promise<DeltaManifest['etcd']> {
    const { config, log } = this.options;
    for (let delay = RETRY_FIRST_MS; ; delay = Math.min(RETRY_MAX_MS, delay * 2)) {
      this.abort.signal.throwIfAborted();
      try {
        const chosen = await chooseMember(config.etcd);
        chosen.client.close();
        const s = chosen.status;
        return { endpoint: s.endpoint, memberId: s.memberId, clusterId: s.clusterId, version: s.version };
      } catch (err) {
        log.warn({ err: messageOf(err) }, 'delta log: no etcd member answers; trying again');
        await sleep(delay, undefined, { signal: this.abort.signal });
      }
    }
  }
}

type FollowEnd = { kind: 'stopped' } | { kind: 'compacted'; next: number; current: number };

/**
 * Follows etcd from `next` and stores segments of `chain` until stopped or compacted past.
 * At most one segment is being stored at a time, in revision order, retried until it is.
 */
class Follower {
  private readonly builder = new SegmentBuilder();
  private readonly watch: KeyspaceWatch;
  private readonly cluster: string;
  private writing: Promise<void> | undefined;
  /** The content being stored (kept for retries and the lag). */
  private pending: SegmentContent | undefined;
  private timer: NodeJS.Timeout | undefined;
  private due = false;
  private paused = false;
  private disconnectedAt: number | undefined;
  private readonly done: Promise<FollowEnd>;
  private finish!: (end: FollowEnd) => void;
  private readonly abort = new AbortController();
  /** Since when the writer may be behind etcd (started, paused, disconnected); undefined once caught up. */
  private behindSince: number | undefined = Date.now();
  private failures = 0;
  private readonly lagTimer: NodeJS.Timeout;

  constructor(
    private readonly options: DeltaWriterOptions,
    private readonly client: Etcd3,
    private readonly chain: DeltaManifest['chain'],
    next: number,
    private readonly etcd: DeltaManifest['etcd'],
    private readonly stats: WriterStats,
  ) {
    this.cluster = options.config.cluster;
    this.done = new Promise((resolve) => (this.finish = resolve));
    this.watch = new KeyspaceWatch(client, next, {
      onEvents: (events) => this.onEvents(events),
      onEnded: (reason) => void this.onEnded(reason),
      onConnection: (connected, err) => this.onConnection(connected, err),
      onCaughtUp: () => (this.behindSince = undefined),
    });
    this.lagTimer = setInterval(() => this.exportLag(), LAG_EVERY_MS);
    this.lagTimer.unref();
  }

  async run(): Promise<FollowEnd> {
    this.options.log.info(
      { from: this.watch.next, follows: this.chain.follows, chainStart: this.chain.startRevision },
      'delta log: watching',
    );
    this.watch.start();
    try {
      return await this.done;
    } finally {
      clearInterval(this.lagTimer);
      clearTimeout(this.timer);
      this.options.metrics?.deltaBuffered.set({ cluster: this.cluster }, 0);
    }
  }

  /** Ends following; on shutdown the buffered events are stored first (bounded by queue.shutdownGrace). */
  stop(flush: boolean): void {
    if (this.abort.signal.aborted) return;
    void this.watch.stop();
    clearTimeout(this.timer);
    if (!flush) {
      this.abort.abort(new Error('stopped'));
      this.finish({ kind: 'stopped' });
      return;
    }
    const grace = setTimeout(
      () => this.abort.abort(new Error('shutdown grace over')),
      this.options.config.queue.shutdownGrace,
    );
    grace.unref();
    void this.drain().finally(() => {
      clearTimeout(grace);
      this.abort.abort(new Error('stopped'));
      this.finish({ kind: 'stopped' });
    });
  }

  private get maxBytes(): number {
    return this.options.config.delta.maxSegmentBytes;
  }

  private onEvents(events: DeltaEvent[]): void {
    const wasEmpty = this.builder.eventCount === 0;
    for (const e of events) this.builder.add(e);
    const buffered = this.bufferedBytes();
    this.stats.peakBufferedBytes = Math.max(this.stats.peakBufferedBytes, buffered);
    this.options.metrics?.deltaBuffered.set({ cluster: this.cluster }, buffered);
    if (wasEmpty && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.due = true;
        this.flush();
      }, this.options.config.delta.flushInterval);
    }
    if (this.builder.bytes >= this.maxBytes) {
      this.due = true;
      if (this.writing) this.pauseWatch();
      else this.flush();
    }
  }

  /** Starts storing the buffer when due and the store is free; the next one starts when it is done. */
  private flush(): void {
    if (this.writing || !this.due || this.abort.signal.aborted) return;
    const content = this.builder.take();
    this.due = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!content) return;
    this.pending = content;
    this.writing = this.store(content).then(
      () => {
        content.release();
        this.pending = undefined;
        this.writing = undefined;
        if (this.abort.signal.aborted) return;
        // What filled up meanwhile is due at once when full, else at its own timer.
        if (this.builder.bytes >= this.maxBytes) this.due = true;
        this.flush();
        if (this.paused && this.builder.bytes < this.maxBytes) this.resumeWatch();
      },
      () => {
        // Aborted (stopped): the events are left to the next writer, which reads them from etcd.
        this.writing = undefined;
      },
    );
  }

  private async store(content: SegmentContent): Promise<void> {
    const { store, config, log, metrics } = this.options;
    for (let delay = RETRY_FIRST_MS; ; delay = Math.min(RETRY_MAX_MS, delay * 2)) {
      this.abort.signal.throwIfAborted();
      try {
        const m = await writeSegment(store, {
          config,
          content,
          chain: this.chain,
          etcd: this.etcd,
          signal: this.abort.signal,
        });
        metrics?.deltaSegments.inc({ cluster: this.cluster });
        metrics?.deltaEvents.inc({ cluster: this.cluster }, m.eventCount);
        metrics?.deltaStoredBytes.inc({ cluster: this.cluster }, m.storedSize);
        if (this.failures > 0) log.info({ attempts: this.failures + 1 }, 'delta log: the store takes segments again');
        this.failures = 0;
        log.debug(
          { first: m.firstRevision, last: m.lastRevision, events: m.eventCount, storedSize: m.storedSize },
          'delta log: segment published',
        );
        return;
      } catch (err) {
        this.abort.signal.throwIfAborted();
        this.failures++;
        metrics?.deltaWriteFailures.inc({ cluster: this.cluster });
        const entry = { err: messageOf(err), first: content.firstRevision, attempt: this.failures };
        if (this.failures === 1) log.warn(entry, 'delta log: storing a segment failed; retrying (events kept)');
        else log.debug(entry, 'delta log: storing a segment failed again');
        await sleep(delay, undefined, { signal: this.abort.signal });
      }
    }
  }

  /** Stores what is buffered: on shutdown and before a gap is handled. */
  private async drain(): Promise<void> {
    try {
      while (this.writing || this.builder.eventCount > 0) {
        if (this.writing) await this.writing;
        if (this.abort.signal.aborted) return;
        this.due = true;
        this.flush();
        if (!this.writing) return;
      }
    } catch {
      // aborted
    }
  }

  private pauseWatch(): void {
    if (this.paused) return;
    this.paused = true;
    this.behindSince ??= Date.now();
    this.options.log.info(
      { next: this.watch.next, buffered: this.bufferedBytes() },
      'delta log: the store is behind; watch paused until the buffered segment is stored',
    );
    void this.watch.stop();
  }

  private resumeWatch(): void {
    if (!this.paused || this.abort.signal.aborted) return;
    this.paused = false;
    this.options.log.info({ next: this.watch.next }, 'delta log: watch resumed');
    this.watch.start();
  }

  private async onEnded(reason: { compacted: boolean; error: Error }): Promise<void> {
    if (this.abort.signal.aborted) return;
    const { log } = this.options;
    const from = this.watch.next;
    let state: { compacted: boolean; current: number } | undefined;
    try {
      state = await isCompacted(this.client, from);
    } catch {
      state = undefined;
    }
    if (state?.compacted || (state === undefined && reason.compacted)) {
      // Everything received is valid: store it, then the gap starts right after.
      await this.drain();
      if (this.abort.signal.aborted) return;
      this.abort.abort(new Error('compacted'));
      this.finish({ kind: 'compacted', next: from, current: state?.current ?? 0 });
      return;
    }
    log.error({ err: messageOf(reason.error), revision: from }, 'delta log: etcd canceled the watch; watching again');
    await sleep(RETRY_FIRST_MS * 4, undefined, { signal: this.abort.signal }).catch(() => undefined);
    if (!this.paused && !this.abort.signal.aborted) this.watch.start();
  }

  private onConnection(connected: boolean, err?: Error): void {
    if (connected) {
      if (this.disconnectedAt !== undefined) this.options.log.info('delta log: etcd watch reconnected');
      this.disconnectedAt = undefined;
      return;
    }
    if (this.disconnectedAt === undefined) {
      this.disconnectedAt = Date.now();
      this.behindSince ??= this.disconnectedAt;
      this.options.log.warn(
        { err: err ? messageOf(err) : undefined },
        'delta log: etcd watch disconnected; reconnecting',
      );
    }
  }

  private bufferedBytes(): number {
    return this.builder.bytes + (this.pending?.bytes ?? 0);
  }

  /**
   * Now minus the time up to which every change is stored: the oldest event not yet stored, or
   * since when the watch may be behind etcd (start, pause, disconnect) until etcd says it is
   * caught up. 0 while caught up with nothing buffered.
   */
  private exportLag(): void {
    const now = Date.now();
    const since = [this.pending?.firstEventAt, this.builder.oldestReceivedAt, this.behindSince].filter(
      (t): t is number => t !== undefined,
    );
    const lag = since.length === 0 ? 0 : (now - Math.min(...since)) / 1000;
    this.options.metrics?.deltaLag.set({ cluster: this.cluster }, Math.max(0, lag));
    this.options.metrics?.deltaBuffered.set({ cluster: this.cluster }, this.bufferedBytes());
  }
}

async function retryUntilDone<T>(work: () => Promise<T>, what: string, log: Logger, signal: AbortSignal): Promise<T> {
  for (let delay = RETRY_FIRST_MS; ; delay = Math.min(RETRY_MAX_MS, delay * 2)) {
    signal.throwIfAborted();
    try {
      return await work();
    } catch (err) {
      signal.throwIfAborted();
      log.warn({ err: messageOf(err) }, `delta log: ${what} failed; retrying`);
      await sleep(delay, undefined, { signal });
    }
  }
}
