/**
 * The webhook role's HTTP app: the audit and admission trigger sources, health, readiness and
 * metrics. Listening (TLS, address) and the dashboard are wired by the caller; more routers
 * (e.g. the bull-board UI at /queues) come in through `extraRoutes`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Express, type Request, type RequestHandler } from 'express';
import type { Config } from '../core/config/index.js';
import type { ChangeRecorder } from '../core/queue/contract.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { admissionRoute } from './admission.js';
import { auditRoute } from './audit.js';
import type { AuditDecodePool } from './audit-decode-pool.js';
import { metricsAuthentication } from '../core/http/bearer-token.js';
import { auditAuthentication, loadAuditAuth, webhookAuthCheck } from './audit-auth.js';
import { errorHandler, methodNotAllowed, notFound } from './errors.js';
import { readinessRoute, type ReadyCheck } from '../core/http/health.js';
import { bodySlots, createBodySlots } from './body-slots.js';
import { jsonBody, type JsonBodyOptions } from './json-body.js';
import { ADMISSION_PATH, admissionFastPath, type FastPath } from './admission-fast-path.js';
import type { TriggerRouteOptions } from './route-options.js';
import { auditDecodeLimits } from './audit-decode.js';

export interface ExtraRoute {
  /** Mount path, e.g. `/queues`; also the `route` label of its requests in the metrics. */
  path: string;
  handler: RequestHandler;
}

export interface WebhookAppOptions {
  config: Pick<Config, 'webhook' | 'filters'> & Partial<Pick<Config, 'auditAuth' | 'admissionAuth' | 'metricsAuth'>>;
  recorder: ChangeRecorder;
  log: Logger;
  metrics: Metrics;
  /** Whether the process can do its job now (the queue passes "Redis reachable"). */
  ready: ReadyCheck;
  extraRoutes?: readonly ExtraRoute[];
  /** Clock for changes without a timestamp of their own; for tests. */
  now?: () => Date;
  /** A readiness check that has not answered in this time counts as not ready. */
  readyTimeoutMs?: number;
  /**
   * The threads that decode audit batches (webhook.auditDecodeThreads); the caller owns and
   * closes them.
   * @defaultValue none: batches are decoded on the event loop
   */
  auditDecodePool?: AuditDecodePool | undefined;
}

const ROUTES = ['POST /audit', 'POST /admission', 'GET /healthz', 'GET /readyz', 'GET /metrics'];

export function createWebhookApp(options: WebhookAppOptions): Express {
  const { config, metrics, log } = options;
  const extraRoutes = options.extraRoutes ?? [];
  const app = express();
  app.disable('x-powered-by');
  // No answer of this server is cached; an ETag is a SHA-1 of every body for nothing.
  app.set('etag', false);

  const routeOf = routeLabeler(
    ROUTES.map((r) => r.slice(r.indexOf(' ') + 1)),
    extraRoutes.map((r) => r.path),
  );
  app.use((req, res, next) => {
    res.on('finish', () => metrics.httpRequests.inc({ route: routeOf(req), code: String(res.statusCode) }));
    next();
  });

  const triggers: TriggerRouteOptions = {
    filters: config.filters,
    recorder: options.recorder,
    metrics,
    log,
    now: options.now ?? (() => new Date()),
  };
  app
    .route('/audit')
    .post(
      // Before the body is read: an unauthenticated sender gets nothing parsed.
      auditAuthentication(loadAuditAuth(config.auditAuth), log),
      bodySlots({ max: config.webhook.auditConcurrency, field: 'webhook.auditConcurrency' }),
      auditRoute({
        ...triggers,
        limits: auditDecodeLimits(config.webhook),
        pool: options.auditDecodePool,
      }),
    )
    .all(methodNotAllowed('POST'));
  // Off by default: the apiserver sends admission credentials only when its AdmissionConfiguration says so.
  const admissionAuth = webhookAuthCheck(loadAuditAuth(config.admissionAuth, undefined, 'admissionAuth'), {
    route: ADMISSION_PATH,
    field: 'admissionAuth',
    sender: 'AdmissionConfiguration kubeconfig',
  });
  const admissionSlots = createBodySlots({
    max: config.webhook.admissionConcurrency,
    field: 'webhook.admissionConcurrency',
  });
  const admissionBody: JsonBodyOptions = {
    limit: config.webhook.admissionBodyLimit,
    limitField: 'webhook.admissionBodyLimit',
    maxDepth: config.webhook.maxJsonDepth,
    expected: 'an admission.k8s.io/v1 AdmissionReview',
  };
  serveFirst(
    app,
    admissionFastPath({
      authenticate: admissionAuth,
      slots: admissionSlots,
      body: admissionBody,
      triggers,
      metrics,
      log,
    }),
  );
  app
    .route(ADMISSION_PATH)
    .post(
      (req, _res, next) => next(admissionAuth(req)),
      bodySlots(admissionSlots),
      jsonBody(admissionBody),
      admissionRoute(triggers),
    )
    .all(methodNotAllowed('POST'));
  app
    .route('/healthz')
    .get((_req, res) => {
      res.json({ status: 'ok' });
    })
    .all(methodNotAllowed('GET'));
  app
    .route('/readyz')
    .get(readinessRoute(options.ready, log, options.readyTimeoutMs))
    .all(methodNotAllowed('GET'));
  app
    .route('/metrics')
    .get(metricsAuthentication(config.metricsAuth), async (_req, res) => {
      const text = await metrics.registry.metrics();
      res.type(metrics.registry.contentType).send(text);
    })
    .all(methodNotAllowed('GET'));

  for (const extra of extraRoutes) app.use(extra.path, extra.handler);

  app.use(notFound([...ROUTES, ...extraRoutes.map((r) => `${r.path}/*`)]));
  app.use(errorHandler(log));
  return app;
}

/**
 * Has `first` see each request before Express does. Express 5's app function only forwards to
 * `app.handle` (express/lib/express.js), where the per-request set-up starts, so every way of
 * serving the app (`app.listen`, core/http/listen.ts, `createServer(app)`) passes through here.
 */
function serveFirst(app: Express, first: FastPath): void {
  const express5 = app as unknown as { handle: (req: IncomingMessage, res: ServerResponse, next?: unknown) => void };
  const handle = express5.handle;
  express5.handle = (req, res, next) => {
    if (!first(req, res)) handle.call(app, req, res, next);
  };
}

/** A bounded `route` label: a known path or mount, else `other`, never the raw path. */
function routeLabeler(exact: readonly string[], mounts: readonly string[]): (req: Request) => string {
  return (req) => {
    const path = (req.originalUrl.split('?')[0] ?? '').replace(/\/+$/, '') || '/';
    if (exact.includes(path)) return path;
    return mounts.find((m) => path === m || path.startsWith(`${m}/`)) ?? 'other';
  };
}
