/**
 * The bull-board dashboard at /queues, to inspect, retry and clean snapshot jobs and see why each
 * was made (job data: causes per source and sample resources). Off unless both dashboard.user and
 * dashboard.password are set: it can retry and delete jobs, so it is never open.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express, { type Router } from 'express';
import type { Queue } from 'bullmq';
import type { Config } from '../core/config/index.js';
import { operatorGate } from './basic-auth.js';
import type { LoginLimiter } from './login-limiter.js';

export const DASHBOARD_PATH = '/queues';

export interface DashboardOptions {
  /** Shared by the operator routes, so failed logins on one count on the other. */
  loginLimiter?: LoginLimiter;
  config: Pick<Config, 'dashboard' | 'cluster'>;
  queue: Queue;
}

export function dashboardEnabled(config: Pick<Config, 'dashboard'>): boolean {
  return Boolean(config.dashboard.user && config.dashboard.password);
}

export function dashboardRouter(options: DashboardOptions): Router {
  const router = express.Router();
  router.use(
    operatorGate(
      options.config,
      'the dashboard is off: set dashboard.user and dashboard.password (--dashboard-user, --dashboard-password)',
      options.loginLimiter,
    ),
  );
  if (!dashboardEnabled(options.config)) return router;
  const adapter = new ExpressAdapter();
  adapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: [
      new BullMQAdapter(options.queue, {
        readOnlyMode: false,
        description: `etcd snapshots of cluster ${options.config.cluster}`,
      }),
    ],
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: 'etcd-autobackup' } },
  });
  router.use(adapter.getRouter() as Router);
  return router;
}
