/**
 * What every end-to-end test needs: a real etcd, a real redis-server and a file store in a temp
 * directory, the CLI processes under test (see ../support/processes.ts), the settings they share,
 * and read-only views of the result (`list --json`, the files on disk, the BullMQ queue).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { configSchema } from '../../core/config/index.js';
import {
  connectRedis,
  createSnapshotQueue,
  windowOf,
  type DebounceWindow,
  type SnapshotQueue,
} from '../../core/queue/index.js';
import type { Manifest } from '../../worker/manifest.js';
import { runCli } from '../support/cli.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { startHoldProxy, type HoldProxy } from '../support/hold-proxy.js';
import { waitFor } from '../support/ports.js';
import { Processes } from '../support/processes.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { tempDir } from '../support/tmp.js';

export const CLUSTER = 'e2e';

export interface E2eStack {
  etcd: EtcdServer;
  redis: RedisServer;
  storeDir: string;
  processes: Processes;
  /** Present when started with `{ holdProxy: true }`: etcd behind a proxy that can hold a snapshot. */
  proxy: HoldProxy | undefined;
  /** The settings every process of the test shares; `endpoint` defaults to etcd itself. */
  flags(options: { windowMs: number; endpoint?: string }): string[];
  /** `etcd-autobackup list --json`: the published snapshots, newest first. */
  list(): Promise<Manifest[]>;
  /** The queue as the processes see it, for job states. */
  queue(): SnapshotQueue;
  /** Every file under the store directory, relative to it. */
  storeFiles(): Promise<string[]>;
  /** Everything the processes said, for assertion messages. */
  describe(): string;
  /** Kills every process, then stops the servers and removes the temp dirs. */
  stop(): Promise<void>;
}

export async function startE2eStack(options: { holdProxy?: boolean } = {}): Promise<E2eStack> {
  const redis = await startRedis();
  const cleanups: (() => Promise<void>)[] = [() => redis.stop()];
  const processes = new Processes();
  let queue: { q: SnapshotQueue; close: () => Promise<void> } | undefined;
  try {
    const etcd = await startEtcd();
    cleanups.push(() => etcd.stop());
    const dir = await tempDir('e2e-store');
    cleanups.push(() => dir.remove());
    const proxy = options.holdProxy ? await startHoldProxy(Number(new URL(etcd.endpoint).port)) : undefined;
    if (proxy) cleanups.push(() => proxy.stop());
    const config = configSchema.parse({ cluster: CLUSTER, redis: { url: redis.url } });

    const stack: E2eStack = {
      etcd,
      redis,
      storeDir: dir.path,
      processes,
      proxy,
      flags: ({ windowMs, endpoint }) => [
        '--cluster',
        CLUSTER,
        '--redis-url',
        redis.url,
        '--endpoints',
        endpoint ?? etcd.endpoint,
        '--store',
        `file://${dir.path}`,
        '--debounce-window',
        `${windowMs}ms`,
        '--max-interval',
        '0',
        // Short enough that a crashed worker's job is retried within seconds, long enough that
        // a busy CI machine still renews the lock of a running snapshot in time.
        '--lock-duration',
        '10s',
        '--shutdown-grace',
        '5s',
      ],
      async list() {
        const r = await runCli(['list', '--json', '--cluster', CLUSTER, '--store', `file://${dir.path}`], {
          timeoutMs: 60_000,
        });
        if (r.code !== 0) throw new Error(`list --json exited ${r.code}: ${r.stderr}`);
        return JSON.parse(r.stdout) as Manifest[];
      },
      queue() {
        if (!queue) {
          const connection = connectRedis(config.redis, 'worker');
          connection.on('error', () => undefined);
          const q = createSnapshotQueue(config, connection);
          queue = {
            q,
            close: async () => {
              await q.close().catch(() => undefined);
              connection.disconnect();
            },
          };
        }
        return queue.q;
      },
      async storeFiles() {
        const entries = await readdir(dir.path, { recursive: true, withFileTypes: true });
        return entries
          .filter((e) => e.isFile())
          .map((e) => join(e.parentPath, e.name).slice(dir.path.length + 1))
          .sort();
      },
      describe: () => processes.describe(),
      async stop() {
        await processes.killAll();
        await queue?.close();
        for (const c of cleanups.reverse()) await c().catch(() => undefined);
      },
    };
    return stack;
  } catch (err) {
    await processes.killAll();
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    throw err;
  }
}

/** Waits until no snapshot job is waiting, delayed or running. */
export async function waitQueueIdle(queue: SnapshotQueue, what: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    what,
    async () => {
      const c = await queue.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
      return Object.values(c).every((n) => n === 0);
    },
    timeoutMs,
  );
}

/** Sleeps until `margin` ms into the next debounce window and returns that window. */
export async function nextWindow(windowMs: number, marginMs = 150): Promise<DebounceWindow> {
  const next = windowOf(Date.now() + windowMs, windowMs);
  await new Promise((r) => setTimeout(r, Math.max(0, next.start + marginMs - Date.now())));
  return next;
}

interface AuditEvent {
  auditID: string;
  stage: string;
  objectRef: { name?: string; namespace?: string; resource: string; apiGroup?: string };
  [field: string]: unknown;
}

function fixture<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8')) as T;
}

/**
 * The fixture's write events (the ones its `.expected.json` lists as triggers, at stage
 * ResponseComplete): templates for bursts of audit events that each count as one trigger.
 */
const WRITE_EVENTS: AuditEvent[] = (() => {
  const list = fixture<{ items: AuditEvent[] }>('audit-eventlist-mixed.json');
  const { triggers } = fixture<{ triggers: string[] }>('audit-eventlist-mixed.expected.json');
  return list.items.filter((e) => triggers.includes(e.auditID) && e.stage === 'ResponseComplete');
})();

/**
 * An audit EventList of `count` write events, as the apiserver's webhook backend sends it, each
 * on another object (`<name>-<tag>-<i>`) so that nothing could collapse them.
 */
export function auditBatch(
  count: number,
  tag: string,
): { kind: string; apiVersion: string; metadata: object; items: AuditEvent[] } {
  const items: AuditEvent[] = [];
  for (let i = 0; i < count; i++) {
    const template = WRITE_EVENTS[i % WRITE_EVENTS.length] as AuditEvent;
    items.push({
      ...template,
      auditID: `${randomBytes(8).toString('hex')}-${i}`,
      objectRef: { ...template.objectRef, name: `${template.objectRef.name ?? 'x'}-${tag}-${i}` },
    });
  }
  return { kind: 'EventList', apiVersion: 'audit.k8s.io/v1', metadata: {}, items };
}

interface AdmissionReview {
  apiVersion: string;
  kind: string;
  request: { uid: string; name: string; [field: string]: unknown };
}

/** The fixture's AdmissionReview (an UPDATE of a Deployment) with its own uid and object name. */
export function admissionReview(uid: string, name: string): AdmissionReview {
  const review = fixture<AdmissionReview>('admission-review-update.json');
  return { ...review, request: { ...review.request, uid, name } };
}

/** POSTs JSON and returns the status and parsed body (or the raw text when it is not JSON). */
export async function postJson(url: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) as unknown };
  } catch {
    return { status: res.status, body: text };
  }
}

/** Writes `count` keys of `size` random (incompressible) bytes: a database whose snapshot takes a while to stream. */
export async function fillRandom(
  client: Etcd3,
  count: number,
  size: number,
  prefix = '/registry/e2e-fill/',
): Promise<void> {
  for (let i = 0; i < count; i += 16) {
    const ops = [];
    for (let j = i; j < Math.min(count, i + 16); j++)
      ops.push(
        client
          .put(`${prefix}${String(j).padStart(6, '0')}`)
          .value(randomBytes(size))
          .exec(),
      );
    await Promise.all(ops);
  }
}

/** `p`, or a rejection saying what did not happen within `ms` (with the processes' state from `what`). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what()}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
