/** GET /readyz: ready only while the process can do its job (for the queue: Redis reachable). */
import express, { type Express, type RequestHandler } from 'express';
import type { Logger } from '../logger.js';
import { messageOf } from '../errors.js';
import { metricsAuthentication } from './bearer-token.js';

export type ReadyCheck = () => boolean | Promise<boolean>;

export type Readiness = { ready: true } | { ready: false; reason: string };

/** Runs the check once; a check that throws or hangs counts as not ready rather than stalling the probe. */
export async function checkReadiness(ready: ReadyCheck, timeoutMs: number, log: Logger): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    const answer = await Promise.race([Promise.resolve().then(ready), timeout]);
    if (answer === 'timeout')
      return { ready: false, reason: `the readiness check did not answer within ${timeoutMs} ms` };
    return answer ? { ready: true } : { ready: false, reason: 'a dependency is not reachable (the queue needs Redis)' };
  } catch (err) {
    // The message goes to the log only: a dependency's error may name internal addresses.
    log.warn({ error: messageOf(err) }, 'readiness check failed');
    return { ready: false, reason: 'the readiness check failed; the server log has the details' };
  } finally {
    clearTimeout(timer);
  }
}

export function readinessRoute(ready: ReadyCheck, log: Logger, timeoutMs = 5_000): RequestHandler {
  return async (_req, res) => {
    const readiness = await checkReadiness(ready, timeoutMs, log);
    if (readiness.ready) res.json({ status: 'ready' });
    else res.status(503).json({ status: 'not ready', reason: readiness.reason });
  };
}

export interface HealthAppOptions {
  metrics: { registry: { metrics(): Promise<string>; contentType: string } };
  ready: ReadyCheck;
  log: Logger;
  /** metricsAuth: a bearer token GET /metrics requires. */
  metricsAuth?: { tokenFile?: string | undefined };
}

/**
 * /healthz, /readyz and /metrics for a process that serves nothing else (the worker role on its
 * own); the webhook role serves the same routes from its own app.
 */
export function createHealthApp(options: HealthAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', readinessRoute(options.ready, options.log));
  app.get('/metrics', metricsAuthentication(options.metricsAuth), async (_req, res) => {
    res.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
  });
  app.use((_req, res) => {
    res.status(404).json({ error: 'not found: this process serves GET /healthz, /readyz and /metrics' });
  });
  return app;
}
