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

/**
 * bull-board's page links IBM Plex from fonts.googleapis.com. Control planes are often air-gapped,
 * and a page that calls out to Google from inside the cluster is a leak of its own: the link is
 * taken out, and bull-board's CSS falls back to the system fonts it names after Plex.
 */
const EXTERNAL_FONTS = /<link[^>]+href="https:\/\/fonts\.(?:googleapis|gstatic)\.com[^>]*>\s*/g;

/** Serves bull-board's page with nothing loaded from outside the cluster. */
function withoutExternalFonts(_req: express.Request, res: express.Response, next: express.NextFunction): void {
  const render = res.render.bind(res);
  res.render = (view: string, locals?: object) => {
    render(view, locals ?? {}, (err: Error | null, html: string) => {
      if (err) return next(err);
      res.type('html').send(html.replace(EXTERNAL_FONTS, ''));
    });
  };
  next();
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
  router.use(withoutExternalFonts, adapter.getRouter() as Router);
  return router;
}
