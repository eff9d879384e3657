/**
 * The etcd watch trigger source: watches the Kubernetes key prefix in etcd itself and records a
 * change for every put and delete outside the ignored prefixes. It sees every write, whatever
 * the apiserver's audit or admission setup, at the cost of etcd access from the webhook.
 *
 * The watch resumes from the revision after the last one it saw, so a reconnect (etcd restart,
 * failover to another member) misses no change. When that revision has been compacted meanwhile,
 * the changes in between are unknowable: it records one change marked `compacted` (the snapshot
 * it leads to holds everything up to then) and starts over at the current revision.
 *
 * Several webhook replicas may each run a watch: the queue deduplicates their changes per window.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3, type IOptions, type IWatchResponse, type Watcher } from 'etcd3';
import type { Config } from '../core/config/index.js';
import { etcdClientOptions, withinDialTimeout } from '../core/etcd-client.js';
import { messageOf } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { countTrigger, type Metrics } from '../core/metrics.js';
import type { ChangeRecorder } from '../core/queue/contract.js';
import { filterKey, type WatchSettings } from './etcd-keys.js';

/** The resource recorded when the watch's history was compacted away before it could read it. */
export const COMPACTED_RESOURCE = 'compacted';

/**
 * Distinct resources recorded per watch response. A response's events all arrive at once, so one
 * record already puts them in the right window; a few more only give the dashboard samples.
 */
const RECORDS_PER_RESPONSE = 5;

/** Delays between retries, doubling from the first to the last. */
const RETRY_FIRST_MS = 200;
const RETRY_MAX_MS = 5_000;

export interface EtcdWatchOptions {
  config: Pick<Config, 'watch' | 'etcd'>;
  recorder: ChangeRecorder;
  log: Logger;
  metrics?: Metrics | undefined;
  /** Clock for the changes' times (etcd events carry none: arrival time it is). */
  now?: () => Date;
}

export interface EtcdWatch {
  /** True while etcd has a watch open for us; false while connecting, reconnecting or stopped. */
  readonly watching: boolean;
  /** The revision the watch reads next: it resumes here after a reconnect. 0 until known. */
  readonly nextRevision: number;
  /** Cancels the watch and closes the etcd client. */
  stop(): Promise<void>;
}

/**
 * Starts watching in the background and returns at once: an unreachable etcd is retried, never
 * a reason to fail the webhook. Throws only for configuration it cannot use (unreadable TLS files).
 */
export function startEtcdWatch(options: EtcdWatchOptions): EtcdWatch {
  const source = new EtcdWatchSource(options);
  source.start();
  return source;
}

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

/**
 * The library's default backoff grows to 30 s; a watch that stays away that long after etcd is
 * back delays every trigger, so ours stops at RETRY_MAX_MS. Jitter spreads replicas' reconnects.
 */
function watchBackoff(delayMs = RETRY_FIRST_MS): WatchBackoff {
  return {
    duration: Math.round(delayMs * (0.8 + Math.random() * 0.4)),
    next: () => watchBackoff(Math.min(RETRY_MAX_MS, delayMs * 2)),
  };
}

class EtcdWatchSource implements EtcdWatch {
  /** Replaced when a watch gets no answer within the dial timeout (its stream is stuck on a silent member). */
  private client: Etcd3;
  private readonly newClient: () => Etcd3;
  /** Runs while the watch waits for etcd to confirm it; cleared when it does. */
  private connectDeadline: NodeJS.Timeout | undefined;
  private reopenDelayMs = RETRY_FIRST_MS;
  private readonly settings: WatchSettings;
  private readonly recorder: ChangeRecorder;
  private readonly log: Logger;
  private readonly metrics: Metrics | undefined;
  private readonly now: () => Date;
  private readonly dialTimeoutMs: number;
  private readonly stopping = new AbortController();
  private watcher: Watcher | undefined;
  private next = 0;
  private connected = false;
  /** Set from the first failed attempt of an outage until the watch is back, to log it once. */
  private outage = false;
  private background: Promise<void> = Promise.resolve();

  constructor(options: EtcdWatchOptions) {
    const { etcd, watch } = options.config;
    const clientOptions = etcdClientOptions(etcd, etcd.endpoints);
    this.newClient = () => new Etcd3({ ...clientOptions, faultHandling: { watchBackoff: watchBackoff() } });
    this.client = this.newClient();
    this.settings = { prefix: watch.prefix, ignorePrefixes: watch.ignorePrefixes };
    this.recorder = options.recorder;
    this.log = options.log;
    this.metrics = options.metrics;
    this.now = options.now ?? (() => new Date());
    this.dialTimeoutMs = etcd.dialTimeout;
  }

  get watching(): boolean {
    return this.connected;
  }

  get nextRevision(): number {
    return this.next;
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  start(): void {
    this.background = this.run(async () => {
      const current = await this.retry('reading the current revision', () => this.currentRevision());
      if (current === undefined) return;
      this.next = current + 1;
      this.open();
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopping.abort();
    this.connected = false;
    clearTimeout(this.connectDeadline);
    const watcher = this.watcher;
    this.watcher = undefined;
    if (watcher) {
      // Canceling waits for etcd's answer; an unresponsive etcd must not hold up a shutdown.
      const timer = new AbortController();
      const timeout = sleep(RETRY_MAX_MS, undefined, { signal: timer.signal }).catch(() => undefined);
      await Promise.race([watcher.cancel().catch(() => undefined), timeout]);
      timer.abort();
    }
    await this.background;
    this.client.close();
  }

  private open(): void {
    if (this.stopped) return;
    this.log.info({ prefix: this.settings.prefix, revision: this.next }, 'etcd watch: watching');
    // watcher() rather than create(): the handlers must be in place before the first response,
    // since etcd may send events right behind the created answer, before a promise would settle.
    const watcher = this.client.watch().prefix(this.settings.prefix).startRevision(String(this.next)).watcher();
    this.watcher = watcher;
    watcher
      .on('connected', () => this.onConnected(watcher))
      .on('data', (res) => this.onData(watcher, res))
      .on('disconnected', (err) => this.onDisconnected(watcher, err))
      .on('error', (err) => this.onCanceled(watcher, err));
    this.armConnectDeadline(watcher);
  }

  /**
   * The library waits for etcd's answer to a watch without any deadline: a member that accepts
   * TCP and never answers (or answers unary calls but not the watch stream) kept the watch
   * "connecting" forever, with no log and no trigger. Past etcd.dialTimeout the watch counts as
   * failed: the client is replaced (a new one picks its member anew) and the watch reopened
   * from the same revision after a backoff.
   */
  private armConnectDeadline(watcher: Watcher): void {
    if (this.connectDeadline) return;
    this.connectDeadline = setTimeout(() => {
      this.connectDeadline = undefined;
      if (watcher !== this.watcher || this.connected || this.stopped) return;
      const message = `no answer to the watch within the dial timeout (etcd.dialTimeout ${this.dialTimeoutMs} ms)`;
      if (!this.outage) this.log.warn({ error: message, revision: this.next }, 'etcd watch: reconnecting');
      else this.log.debug({ error: message }, 'etcd watch: still no answer');
      this.outage = true;
      this.watcher = undefined;
      const stuck = this.client;
      this.client = this.newClient();
      // cancel() first: closing the client then ends the stuck stream, and the library drops
      // the watcher instead of re-establishing it on the closed client.
      watcher.cancel().catch(() => undefined);
      stuck.close();
      const delayMs = this.reopenDelayMs;
      this.reopenDelayMs = Math.min(RETRY_MAX_MS, delayMs * 2);
      const previous = this.background;
      this.background = this.run(async () => {
        await previous;
        if (await this.pause(delayMs)) this.open();
      });
    }, this.dialTimeoutMs);
    this.connectDeadline.unref();
  }

  private onConnected(watcher: Watcher): void {
    if (watcher !== this.watcher) return;
    clearTimeout(this.connectDeadline);
    this.connectDeadline = undefined;
    this.reopenDelayMs = RETRY_FIRST_MS;
    this.connected = true;
    if (this.outage) this.log.info({ revision: this.next }, 'etcd watch: reconnected, resuming');
    this.outage = false;
  }

  private onData(watcher: Watcher, res: IWatchResponse): void {
    if (watcher !== this.watcher) return;
    if (res.events.length === 0) {
      // A progress notification: etcd has sent every event up to the header's revision.
      this.next = Math.max(this.next, Number(res.header.revision) + 1);
      return;
    }
    const resources = new Set<string>();
    for (const event of res.events) {
      this.next = Math.max(this.next, Number(event.kv.mod_revision) + 1);
      const decision = filterKey(event.kv.key.toString('utf8'), this.settings);
      if (this.metrics) countTrigger(this.metrics, 'etcd-watch', decision.trigger ? undefined : decision.reason);
      if (decision.trigger && resources.size < RECORDS_PER_RESPONSE) resources.add(decision.resource);
    }
    const at = this.now();
    for (const resource of resources) this.record(resource, at);
  }

  private onDisconnected(watcher: Watcher, err: Error): void {
    if (watcher !== this.watcher) return;
    this.connected = false;
    // The library resumes from the revision after the created answer's header, which is ahead of
    // events still in flight while a watch catches up; resuming after the last event seen is
    // what guarantees that no change is skipped.
    watcher.request.start_revision = String(this.next);
    if (this.stopped) return;
    // The library reconnects by itself; the deadline catches a reconnect that never gets an answer.
    this.armConnectDeadline(watcher);
    if (!this.outage) {
      this.log.warn({ error: messageOf(err), revision: this.next }, 'etcd watch: disconnected, reconnecting');
    } else {
      this.log.debug({ error: messageOf(err) }, 'etcd watch: still disconnected');
    }
    this.outage = true;
  }

  /** etcd ended the watch itself: most often its history was compacted past our revision. */
  private onCanceled(watcher: Watcher, err: Error): void {
    if (watcher !== this.watcher) return;
    this.connected = false;
    this.watcher = undefined;
    if (this.stopped) return;
    const previous = this.background;
    this.background = this.run(async () => {
      await previous;
      await this.recover(err);
    });
  }

  private async recover(err: Error): Promise<void> {
    const from = this.next;
    const state = await this.retry('checking the watch history', () => this.compactedSince(from));
    if (state === undefined) return;
    if (state.compacted) {
      this.log.warn(
        { from, current: state.current },
        'etcd watch: history compacted past the last revision seen; the changes in between are unknown, so a snapshot is triggered and watching restarts at the current revision',
      );
      if (this.metrics) countTrigger(this.metrics, 'etcd-watch');
      this.record(COMPACTED_RESOURCE, this.now());
      this.next = state.current + 1;
    } else {
      // Not compaction: a permission change, or a member that lost its leader. Trying again
      // from the same revision loses nothing; the wait keeps a lasting refusal from spinning.
      this.log.error({ error: messageOf(err), revision: from }, 'etcd watch: canceled by etcd; retrying');
      this.outage = true;
      if (!(await this.pause(RETRY_MAX_MS))) return;
    }
    this.open();
  }

  private record(resource: string, at: Date): void {
    try {
      this.recorder.record({ source: 'etcd-watch', resource, at });
    } catch (err) {
      // The contract says record never throws; if it does, watching goes on.
      this.log.error({ error: messageOf(err), resource }, 'etcd watch: recording a change failed');
    }
  }

  private async currentRevision(): Promise<number> {
    // A count of one key that Kubernetes never writes: the header's revision without any value.
    const res = await this.withinDialTimeout(
      this.client.kv.range({ key: Buffer.from(this.settings.prefix), count_only: true }),
    );
    return Number(res.header.revision);
  }

  /**
   * The client retries a member that accepts TCP and never answers, each attempt with its own
   * deadline: without the overall one the watch reported a 1 s dial timeout after 3 s, and the
   * default 5 s one after about 15 s (the snapshot's dial had the same fault).
   */
  private withinDialTimeout<T>(call: Promise<T>): Promise<T> {
    return withinDialTimeout(call, this.dialTimeoutMs);
  }

  private async compactedSince(revision: number): Promise<{ compacted: boolean; current: number }> {
    const current = await this.currentRevision();
    if (revision > current) return { compacted: false, current };
    try {
      await this.withinDialTimeout(
        this.client.kv.range({ key: Buffer.from(this.settings.prefix), count_only: true, revision }),
      );
      return { compacted: false, current };
    } catch (err) {
      if (/compacted/i.test(messageOf(err))) return { compacted: true, current };
      throw err;
    }
  }

  /** Calls `fn` until it succeeds or the watch stops (then undefined), backing off in between. */
  private async retry<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
    let delayMs = RETRY_FIRST_MS;
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (this.stopped) return undefined;
        if (!this.outage) this.log.warn({ error: messageOf(err), attempt }, `etcd watch: ${what} failed; retrying`);
        else this.log.debug({ error: messageOf(err), attempt }, `etcd watch: ${what} failed again`);
        this.outage = true;
        if (!(await this.pause(delayMs))) return undefined;
        delayMs = Math.min(RETRY_MAX_MS, delayMs * 2);
      }
    }
    return undefined;
  }

  /** Waits `ms`; false when the watch was stopped meanwhile. */
  private async pause(ms: number): Promise<boolean> {
    try {
      await sleep(ms, undefined, { signal: this.stopping.signal });
      return true;
    } catch {
      return false;
    }
  }

  /** Runs background work that must never reject: a bug is logged, not left unhandled. */
  private async run(work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err) {
      this.log.error({ error: messageOf(err) }, 'etcd watch: unexpected failure; the watch has stopped');
    }
  }
}
