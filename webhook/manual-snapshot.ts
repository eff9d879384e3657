/**
 * POST /snapshot: a snapshot now, outside the debounce. It is behind the dashboard's basic auth
 * (a snapshot reads the whole database, so it is not for anyone who can reach the port).
 */
import express, { type Router } from 'express';
import type { Config } from '../core/config/index.js';
import type { Logger } from '../core/logger.js';
import { messageOf } from '../core/errors.js';
import { operatorGate } from './basic-auth.js';
import type { LoginLimiter } from './login-limiter.js';

export interface ManualSnapshotOptions {
  /** Shared by the operator routes, so failed logins on one count on the other. */
  loginLimiter?: LoginLimiter;
  config: Pick<Config, 'dashboard'>;
  enqueue: (cause: { resource: string }) => Promise<string>;
  log: Logger;
}

export function manualSnapshotRouter(options: ManualSnapshotOptions): Router {
  const router = express.Router();
  router.use(
    operatorGate(
      options.config,
      'POST /snapshot is off: set dashboard.user and dashboard.password, or run `etcd-autobackup snapshot --enqueue`',
      options.loginLimiter,
    ),
  );
  router.post('/', async (req, res) => {
    try {
      const jobId = await options.enqueue({ resource: `http ${req.ip ?? ''}`.trim() });
      res.status(202).json({ jobId, status: 'queued' });
    } catch (err) {
      options.log.warn({ error: messageOf(err) }, 'manual snapshot could not be queued');
      res
        .status(503)
        .json({ error: 'the snapshot could not be queued: Redis is not reachable; try again when /readyz is ready' });
    }
  });
  router.all('/', (_req, res) => {
    res.status(405).set('Allow', 'POST').json({ error: 'use POST /snapshot' });
  });
  return router;
}
