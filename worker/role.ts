/** The worker role: the store and the pool of snapshot workers fed by the queue. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../core/config/index.js';
import { messageOf } from '../core/errors.js';
import { describeRedis } from '../core/queue/index.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { startWorkerPool, type WorkerPool } from './pool.js';
import { loadRecipients } from './crypto/age.js';
import { loadKeyRing } from './crypto/keys.js';
import { pruneAfterSnapshot } from './prune.js';
import { prepareStore } from './store-setup.js';
import { drillAfterSnapshot, drillQueuedAfterSnapshot } from './drill-hook.js';
import { clearDrillSchedule, startDrillScheduler, type DrillScheduler } from './drill-schedule.js';
import type { Manifest } from './manifest.js';
import { fanOut, type Notifier } from './notify/notifier.js';
import { openStore } from './stores/open.js';
import { startDeltaWriter, type DeltaWriter } from './delta/writer.js';
import type { Store } from './stores/store.js';

export interface WorkerRole {
  store: Store;
  /** Resolves once the pool takes jobs (Redis answered), undefined when stopped before that. */
  started: Promise<WorkerPool | undefined>;
  /** Ready while the worker's Redis connection is up. */
  ready(): boolean;
  close(): Promise<void>;
}

/** Between two attempts to start the pool while Redis refuses (wrong password) or is down. */
const START_RETRY_MS = 5_000;

/**
 * Opens the store (a bad key or store config stops the process here) and starts the pool in the
 * background: the process serves /readyz (503 until the pool runs) and obeys SIGTERM even while
 * Redis is unreachable or refuses the password.
 */
export async function startWorkerRole(options: { config: Config; log: Logger; metrics: Metrics }): Promise<WorkerRole> {
  const { config, log, metrics } = options;
  // Each snapshot reads the key files again (a rotated Secret applies without a restart); reading
  // them now makes a missing or malformed key stop the worker at start, not at its first snapshot.
  await loadKeyRing(config.encryption);
  await loadRecipients(config.encryption);
  const store = await openStore(config);
  abortStaleUploads(store, config.snapshot.timeout, log);
  try {
    await prepareStore({ config, store, log: log.child({ component: 'store' }), metrics });
  } catch (err) {
    await store.close();
    throw err;
  }
  const prune =
    config.retention.enabled && config.retention.afterSnapshot
      ? pruneAfterSnapshot({ config, store, metrics })
      : undefined;
  const notifier = await notifierFor(config, log, metrics);
  // Drill before pruning, so retention already sees the new drill record (a queued drill Job's comes later).
  let drills: DrillScheduler | undefined;
  const queuedDrills = config.drill.afterSnapshot > 0 && drillQueuedAfterSnapshot(config.drill);
  const enqueue = (manifest: Manifest) =>
    drills ? drills.enqueue(manifest) : Promise.reject(new Error('the drills queue is not running'));
  const drill =
    config.drill.afterSnapshot > 0
      ? drillAfterSnapshot({
          config,
          store,
          metrics,
          ...(notifier ? { notifier } : {}),
          ...(queuedDrills ? { enqueue } : {}),
        })
      : undefined;
  const afterSnapshot =
    prune || drill
      ? async (manifest: Manifest, hookLog: Logger) => {
          await drill?.(manifest, hookLog).catch((err: unknown) =>
            hookLog.error({ err: messageOf(err) }, 'drill after snapshot failed to run; the snapshot itself succeeded'),
          );
          await prune?.(manifest, hookLog);
        }
      : undefined;
  // executor job: each snapshot runs as a Kubernetes Job; the Kubernetes client loads only then.
  const runSnapshot =
    config.executor.mode === 'job' ? (await import('./job-executor.js')).jobExecutorFor(config, store) : undefined;
  const stop = new AbortController();
  // One writer per cluster across the workers (a Redis lock): every worker runs one, one leads.
  const delta: DeltaWriter | undefined = config.delta.enabled
    ? startDeltaWriter({ config, store, log: log.child({ component: 'delta-log' }), metrics })
    : undefined;
  let pool: WorkerPool | undefined;
  const workerLog = log.child({ component: 'worker' });
  const started = (async () => {
    for (let attempt = 1; !stop.signal.aborted; attempt++) {
      try {
        // The drills queue first: the pool's hook may enqueue on it from the first snapshot on.
        if (config.drill.schedule > 0 || queuedDrills) {
          drills = await startDrillScheduler({
            config,
            store,
            log: workerLog,
            metrics,
            signal: stop.signal,
            ...(notifier ? { notifier } : {}),
          });
        }
        try {
          pool = await startWorkerPool({
            config,
            store,
            log: workerLog,
            metrics,
            lockDurationMs: config.queue.lockDuration,
            // Look for stalled jobs twice per lock period, so a crashed worker's job waits at most ~1.5 locks.
            stalledIntervalMs: Math.max(1000, Math.round(config.queue.lockDuration / 2)),
            graceMs: config.queue.shutdownGrace,
            signal: stop.signal,
            ...(runSnapshot ? { runSnapshot } : {}),
            ...(afterSnapshot ? { afterSnapshot } : {}),
            ...(notifier ? { notifier } : {}),
          });
        } catch (err) {
          await drills?.close();
          drills = undefined;
          throw err;
        }
        // Only once the pool started, i.e. Redis answers: with Redis down its commands would wait
        // forever and their reconnecting client keep the process alive after SIGTERM.
        if (!drills)
          clearDrillSchedule(config).catch((err: unknown) =>
            workerLog.warn({ err: messageOf(err) }, 'removing the drill.schedule scheduler failed'),
          );
        return pool;
      } catch (err) {
        if (stop.signal.aborted) return undefined;
        workerLog.error(
          { err: messageOf(err), redis: describeRedis(config.redis), attempt },
          'starting the worker failed; trying again',
        );
        await sleep(START_RETRY_MS, undefined, { signal: stop.signal }).catch(() => undefined);
      }
    }
    return undefined;
  })();
  return {
    store,
    started,
    ready: () => pool?.worker.isRunning() ?? false,
    async close() {
      stop.abort(new Error('worker stopping'));
      // The writer stores what it buffered first (within queue.shutdownGrace), while the store is open.
      const closingDelta = delta?.close();
      const running = await started;
      await drills?.close();
      await running?.close();
      await closingDelta;
      await store.close();
    },
  };
}

/**
 * The notification webhook when it has a URL, and Kubernetes Events when `events.enabled` (the
 * Kubernetes client loads only then); undefined when nothing is to be told. A missing `events.deployment` stops the worker at start with the fix.
 */
async function notifierFor(config: Config, log: Logger, metrics: Metrics): Promise<Notifier | undefined> {
  const notifiers: Notifier[] = [];
  const webhook = config.notify.webhook;
  if (webhook.url || webhook.urlFile) {
    const { WebhookNotifier } = await import('./notify/webhook.js');
    notifiers.push(
      new WebhookNotifier({
        settings: webhook,
        log: log.child({ component: 'notify' }),
        onFailure: (reason) => metrics.notificationFailures.inc({ channel: 'webhook', reason }),
      }),
    );
  }
  const events = await kubeEventsFor(config, log, metrics);
  if (events) notifiers.push(events);
  return notifiers.length === 0 ? undefined : fanOut(notifiers);
}

async function kubeEventsFor(config: Config, log: Logger, metrics: Metrics): Promise<Notifier | undefined> {
  if (!config.events.enabled) return undefined;
  if (!config.events.deployment)
    throw new Error('events.enabled needs events.deployment: the name of the worker Deployment the Events are about');
  const { defaultKubeConfig, resolveNamespace } = await import('../core/kube.js');
  const { KubeEventNotifier } = await import('./notify/kube-events.js');
  let kube;
  try {
    kube = defaultKubeConfig();
  } catch (err) {
    // Events are a convenience: without an API to talk to, snapshots go on without them.
    log.warn({ err: messageOf(err) }, 'events.enabled but no Kubernetes API: no Events will be created');
    metrics.notificationFailures.inc({ channel: 'events', reason: 'config' });
    return undefined;
  }
  return new KubeEventNotifier({
    kube,
    namespace: resolveNamespace(kube, config.events.namespace),
    deployment: config.events.deployment,
    timeoutMs: config.events.timeout,
    log: log.child({ component: 'events' }),
    onFailure: (reason) => metrics.notificationFailures.inc({ channel: 'events', reason }),
  });
}

/**
 * Multipart uploads older than snapshot.timeout are left by a failed upload whose abort did not
 * reach the service; no running snapshot is that old. In the background: a store that does not
 * implement ListMultipartUploads (s3rver, some gateways) only logs it.
 */
function abortStaleUploads(store: Store, olderThanMs: number, log: Logger): void {
  if (!store.abortStaleUploads) return;
  store.abortStaleUploads(olderThanMs).then(
    (n) => {
      if (n > 0)
        log.info(
          { store: store.location, aborted: n },
          'aborted incomplete multipart uploads left by failed snapshots',
        );
    },
    (err: unknown) =>
      log.warn({ store: store.location, err: messageOf(err) }, 'could not clean up incomplete multipart uploads'),
  );
}
