/**
 * A delta log for point-in-time restore tests, made from a real etcd watch: every event of the
 * whole keyspace from a revision on, with the time it was received, published as segments with
 * the real writeSegment (the writer's buffering, leadership and resume are the writer's tests).
 */
import type { Etcd3, IWatchResponse } from 'etcd3';
import type { Config } from '../../core/config/index.js';
import { segmentContent, writeSegment } from '../../worker/delta/segment-write.js';
import type { DeltaEvent, DeltaManifest } from '../../worker/delta/segment.js';
import type { Store } from '../../worker/stores/store.js';
import { waitFor } from './ports.js';

export interface LiveLog {
  events: DeltaEvent[];
  /** Resolves once every event up to `revision` has been received. */
  until(revision: number): Promise<void>;
  stop(): Promise<void>;
}

/** Watches the whole keyspace from `fromRevision`, keeping every event as the writer would. */
export async function watchAll(client: Etcd3, fromRevision: number): Promise<LiveLog> {
  const events: DeltaEvent[] = [];
  let newest = fromRevision - 1;
  const watcher = await client
    .watch()
    .inRange({ start: Buffer.from([0]), end: Buffer.from([0]) })
    .startRevision(String(fromRevision))
    .create();
  watcher.on('data', (res: IWatchResponse) => {
    const receivedAt = Date.now();
    for (const e of res.events) {
      const kv = e.kv;
      const revision = Number(kv.mod_revision);
      events.push({
        revision,
        type: e.type === 'Put' ? 'put' : 'delete',
        key: Buffer.from(kv.key),
        value: e.type === 'Put' ? Buffer.from(kv.value) : Buffer.alloc(0),
        createRevision: Number(kv.create_revision),
        version: Number(kv.version),
        lease: String(kv.lease),
        receivedAt,
      });
      newest = Math.max(newest, revision);
    }
  });
  return {
    events,
    async until(revision) {
      await waitFor(`the watch to reach revision ${revision}`, () => Promise.resolve(newest >= revision));
    },
    stop: () => watcher.cancel(),
  };
}

export interface PublishOptions {
  config: Config;
  /** The snapshot the chain follows and its first revision. */
  chain: DeltaManifest['chain'];
  /** Events per segment, rounded up to whole revisions. */
  perSegment: number;
}

/** Publishes `events` (in order) as segments of about `perSegment` events, whole revisions each. */
export async function publishSegments(
  store: Store,
  events: readonly DeltaEvent[],
  options: PublishOptions,
): Promise<DeltaManifest[]> {
  const manifests: DeltaManifest[] = [];
  let start = 0;
  while (start < events.length) {
    let end = Math.min(events.length, start + options.perSegment);
    while (end < events.length && events[end]?.revision === events[end - 1]?.revision) end++;
    manifests.push(
      await writeSegment(store, {
        config: options.config,
        content: segmentContent(events.slice(start, end)),
        chain: options.chain,
        etcd: { endpoint: 'test', memberId: '1', clusterId: '1', version: '3.4' },
      }),
    );
    start = end;
  }
  return manifests;
}
