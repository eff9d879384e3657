/**
 * A watch on etcd's whole keyspace from a given revision, as the delta-log writer needs it: whole
 * responses (etcd never splits one revision's events across responses without `fragment`), the
 * position resumed exactly after a reconnect, and compaction told apart from other cancels.
 *
 * The etcd3 library resumes a reconnecting watch after the last response's header revision, which
 * is ahead of the events still to come while a watch catches up on history: resuming after the
 * last event received is what keeps the log free of holes (as webhook/etcd-watch.ts does).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';
import { messageOf } from '../../core/errors.js';
import type { DeltaEvent } from './segment.js';

export interface KeyspaceWatchHandlers {
  /** Events of whole revisions, in order, all >= the watch's position; `at` is the receive time. */
  onEvents(events: DeltaEvent[]): void;
  /** etcd ended the watch: `compacted` when its history no longer holds the position. */
  onEnded(reason: { compacted: boolean; error: Error }): void;
  /** The watch has received every revision etcd had when it answered. */
  onCaughtUp?(): void;
  /** Connection state, for the lag metric and logs. */
  onConnection?(connected: boolean, error?: Error): void;
}

/** Canceling waits for etcd's answer; an unresponsive etcd must not hold the writer up longer. */
const CANCEL_WAIT_MS = 5_000;

export class KeyspaceWatch {
  private watcher: Watcher | undefined;
  private position: number;

  constructor(
    private readonly client: Etcd3,
    from: number,
    private readonly handlers: KeyspaceWatchHandlers,
    private readonly now: () => number = Date.now,
  ) {
    this.position = from;
  }

  /** The next revision the watch reads. */
  get next(): number {
    return this.position;
  }

  get open(): boolean {
    return this.watcher !== undefined;
  }

  /** Opens the watch at `next`; no-op when open. */
  start(): void {
    if (this.watcher) return;
    // watcher() rather than create(): the handlers are in place before etcd's first response.
    const watcher = this.client.watch().prefix('').startRevision(String(this.position)).watcher();
    this.watcher = watcher;
    watcher
      .on('connected', (res: IWatchResponse) => {
        if (watcher !== this.watcher) return;
        this.handlers.onConnection?.(true);
        this.checkCaughtUp(res);
      })
      .on('data', (res: IWatchResponse) => this.onData(watcher, res))
      .on('disconnected', (err: Error) => {
        if (watcher !== this.watcher) return;
        watcher.request.start_revision = String(this.position);
        this.handlers.onConnection?.(false, err);
      })
      .on('error', (err: Error) => {
        if (watcher !== this.watcher) return;
        this.watcher = undefined;
        this.handlers.onEnded({ compacted: /compacted/i.test(messageOf(err)), error: err });
      });
  }

  /** Stops the watch (backpressure or shutdown); events still in flight are dropped, `next` kept. */
  async stop(): Promise<void> {
    const watcher = this.watcher;
    this.watcher = undefined;
    if (!watcher) return;
    const timer = new AbortController();
    const timeout = sleep(CANCEL_WAIT_MS, undefined, { signal: timer.signal }).catch(() => undefined);
    await Promise.race([watcher.cancel().catch(() => undefined), timeout]);
    timer.abort();
  }

  private onData(watcher: Watcher, res: IWatchResponse): void {
    if (watcher !== this.watcher) return;
    if (res.events.length === 0) {
      this.checkCaughtUp(res); // a progress notification
      return;
    }
    const at = this.now();
    const events: DeltaEvent[] = [];
    for (const e of res.events) {
      const revision = Number(e.kv.mod_revision);
      // A reconnect may send again what was already received.
      if (revision < this.position) continue;
      const put = e.type === 'Put';
      events.push({
        revision,
        type: put ? 'put' : 'delete',
        key: e.kv.key,
        value: put ? e.kv.value : Buffer.alloc(0),
        createRevision: put ? Number(e.kv.create_revision) : 0,
        version: put ? Number(e.kv.version) : 0,
        lease: put && e.kv.lease ? String(e.kv.lease) : '0',
        receivedAt: at,
      });
    }
    const last = events[events.length - 1];
    if (!last) {
      this.checkCaughtUp(res);
      return;
    }
    this.position = last.revision + 1;
    this.handlers.onEvents(events);
    this.checkCaughtUp(res);
  }

  private checkCaughtUp(res: IWatchResponse): void {
    // The header carries etcd's revision when it sent the response.
    if (Number(res.header.revision) < this.position) this.handlers.onCaughtUp?.();
  }
}

/** True when etcd's history no longer holds `revision` (compacted past it). */
export async function isCompacted(client: Etcd3, revision: number): Promise<{ compacted: boolean; current: number }> {
  const head = await client.kv.range({ key: Buffer.from([0]), count_only: true });
  const current = Number(head.header.revision);
  if (revision > current) return { compacted: false, current };
  try {
    await client.kv.range({ key: Buffer.from([0]), count_only: true, revision: String(revision) });
    return { compacted: false, current };
  } catch (err) {
    if (/compacted/i.test(messageOf(err))) return { compacted: true, current };
    throw err;
  }
}
