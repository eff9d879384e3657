/**
 * Real Redis + real etcd + a file store in a temp dir, for queue and worker tests; plus a store
 * wrapper that can hold a snapshot's upload until the test lets it go.
 */
import type { Readable } from 'node:stream';
import { configSchema, type Config, type ConfigInput } from '../../core/config/index.js';
import { createLogger, type Logger } from '../../core/logger.js';
import type { SnapshotQueue } from '../../core/queue/index.js';
import { MANIFEST_SUFFIX, parseManifest, type Manifest } from '../../worker/manifest.js';
import { FileStore } from '../../worker/stores/file.js';
import type { ObjectInfo, PutOptions, Store } from '../../worker/stores/store.js';
import { startEtcd, type EtcdServer } from './etcd.js';
import { waitFor } from './ports.js';
import { startRedis, type RedisOptions, type RedisServer } from './redis.js';
import { tempDir } from './tmp.js';

export interface Stack {
  redis: RedisServer;
  etcd: EtcdServer;
  store: FileStore;
  storeDir: string;
  log: Logger;
  config(queue?: ConfigInput['queue']): Config;
  /** Published snapshots, oldest first. */
  manifests(): Promise<Manifest[]>;
  stop(): Promise<void>;
}

export async function startStack(options: RedisOptions = {}): Promise<Stack> {
  const redis = await startRedis(options);
  let etcd: EtcdServer | undefined;
  let dir: { path: string; remove: () => Promise<void> } | undefined;
  try {
    etcd = await startEtcd();
    dir = await tempDir('queue-store');
  } catch (err) {
    await etcd?.stop();
    await redis.stop();
    throw err;
  }
  const store = new FileStore(dir.path);
  const e = etcd;
  const d = dir;
  return {
    redis,
    etcd: e,
    store,
    storeDir: d.path,
    log: createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'fatal' }),
    config: (queue = {}) =>
      configSchema.parse({
        cluster: 'test',
        etcd: { endpoints: [e.endpoint] },
        store: { url: `file://${d.path}` },
        redis: { url: redis.url, prefix: 'eab-test' },
        queue: { maxInterval: 0, attempts: 3, backoff: 200, ...queue },
      }),
    async manifests() {
      const listed = await store.list('');
      const out: Manifest[] = [];
      for (const o of listed.filter((x) => x.key.endsWith(MANIFEST_SUFFIX))) {
        const { body } = await store.get(o.key);
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(c as Buffer);
        out.push(parseManifest(Buffer.concat(chunks).toString('utf8'), o.key));
      }
      return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    },
    async stop() {
      await Promise.allSettled([redis.stop(), e.stop()]);
      await d.remove();
    },
  };
}

/** Waits until no job is waiting, delayed, prioritized or active. */
/** Runs `fn` on a fresh stack; what it registers with `cleanup` is undone (last first) before the stack stops. */
export async function withStack(
  fn: (stack: Stack, cleanup: (c: () => Promise<void>) => void) => Promise<void>,
): Promise<void> {
  const stack = await startStack();
  const cleanups: (() => Promise<void>)[] = [];
  try {
    await fn(stack, (c) => cleanups.push(c));
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await stack.stop();
  }
}

export async function waitIdle(queue: SnapshotQueue, timeoutMs = 30_000): Promise<void> {
  await waitFor(
    'the queue to drain',
    async () => {
      const c = await queue.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
      return Object.values(c).every((n) => n === 0);
    },
    timeoutMs,
  );
}

/** Waits until at least `n` snapshots are published. */
export async function waitManifests(stack: Stack, n: number, timeoutMs = 30_000): Promise<Manifest[]> {
  return waitFor(
    `${n} published snapshots`,
    async () => {
      const m = await stack.manifests();
      return m.length >= n ? m : undefined;
    },
    timeoutMs,
  );
}

/**
 * A store whose snapshot uploads (not manifests) can be held: `hold()` makes the next upload
 * wait, resolves when it has started, and returns the function that lets it go on.
 */
export class GatedStore implements Store {
  readonly location: string;
  private held: { started: () => void; release: Promise<void> } | undefined;
  failNext = 0;

  constructor(private readonly inner: Store) {
    this.location = inner.location;
  }

  hold(): { started: Promise<void>; release: () => void } {
    let started!: () => void;
    let release!: () => void;
    const startedP = new Promise<void>((r) => (started = r));
    const releaseP = new Promise<void>((r) => (release = r));
    this.held = { started, release: releaseP };
    return { started: startedP, release };
  }

  async put(key: string, body: Readable, options?: PutOptions): Promise<{ size: number }> {
    if (key.endsWith(MANIFEST_SUFFIX)) return this.inner.put(key, body, options);
    if (this.failNext > 0) {
      this.failNext -= 1;
      const err = new Error('injected store failure');
      body.destroy(err);
      throw err;
    }
    const held = this.held;
    if (held) {
      this.held = undefined;
      held.started();
      // Like every real store, give up when the upload is aborted.
      const signal = options?.signal;
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
        if (signal?.aborted) return onAbort();
        signal?.addEventListener('abort', onAbort, { once: true });
        void held.release.then(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        });
      }).catch((err: unknown) => {
        body.destroy(err instanceof Error ? err : new Error(String(err)));
        throw err;
      });
    }
    return this.inner.put(key, body, options);
  }

  list(prefix: string): Promise<ObjectInfo[]> {
    return this.inner.list(prefix);
  }
  get(key: string): Promise<{ body: Readable; size: number }> {
    return this.inner.get(key);
  }
  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
