/**
 * The webhook role: the change signals in (audit, admission, optional etcd watch), the queue
 * recorder they feed, the dashboard, and the HTTP app that serves them.
 */
import type { Express } from 'express';
import type { Config } from '../core/config/index.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { createQueueRecorder, type QueueRecorder } from '../core/queue/index.js';
import { createWebhookApp } from './app.js';
import { auditDecodePoolFor } from './audit-decode-pool.js';
import { DASHBOARD_PATH, dashboardEnabled, dashboardRouter } from './dashboard.js';
import { startEtcdWatch, type EtcdWatch } from './etcd-watch.js';
import { LoginLimiter } from './login-limiter.js';
import { manualSnapshotRouter } from './manual-snapshot.js';

export interface WebhookRoleOptions {
  config: Config;
  log: Logger;
  metrics: Metrics;
  /** Another readiness condition of the process (serve: the worker pool is running). */
  alsoReady?: () => boolean;
}

export interface WebhookRole {
  app: Express;
  recorder: QueueRecorder;
  watch: EtcdWatch | undefined;
  /** Path of the dashboard when it is on. */
  dashboardPath: string | undefined;
  /** Stops the watch and sends what is still in memory to Redis before closing. */
  close(): Promise<void>;
}

export function createWebhookRole(options: WebhookRoleOptions): WebhookRole {
  const { config, log, metrics } = options;
  const recorder = createQueueRecorder({ config, log: log.child({ component: 'queue' }), metrics });
  const watch = config.watch.enabled
    ? startEtcdWatch({ config, recorder, log: log.child({ component: 'etcd-watch' }), metrics })
    : undefined;
  const loginLimiter = new LoginLimiter();
  const auditDecodePool = auditDecodePoolFor(config, log.child({ component: 'audit-decode' }));
  const app = createWebhookApp({
    config,
    auditDecodePool,
    recorder,
    log,
    metrics,
    ready: () => recorder.status().redisUp && (options.alsoReady?.() ?? true),
    extraRoutes: [
      { path: DASHBOARD_PATH, handler: dashboardRouter({ config, queue: recorder.queue, loginLimiter }) },
      {
        path: '/snapshot',
        handler: manualSnapshotRouter({
          config,
          log,
          loginLimiter,
          enqueue: (cause) => recorder.enqueueNow(cause),
        }),
      },
    ],
  });
  return {
    app,
    recorder,
    watch,
    dashboardPath: dashboardEnabled(config) ? DASHBOARD_PATH : undefined,
    async close() {
      await watch?.stop();
      await recorder.flush();
      await recorder.close();
      await auditDecodePool?.close();
    },
  };
}
