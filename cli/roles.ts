/**
 * Wiring for the long-running commands (serve, webhook, worker): start the roles, serve HTTP,
 * and on SIGTERM/SIGINT stop taking work, finish or cleanly abandon what runs, and exit.
 */
import type { Command } from 'commander';
import { createHealthApp } from '../core/http/health.js';
import { listen } from '../core/http/listen.js';
import { startServingTls } from '../certs/serving.js';
import { createMetrics } from '../core/metrics.js';
import { describeRedis } from '../core/queue/index.js';
import { redactConfig } from '../core/config/index.js';
import { createWebhookRole } from '../webhook/role.js';
import { setup, type CliContext } from './options.js';

export type Role = 'webhook' | 'worker';

export async function runRoles(roles: readonly Role[], cmd: Command, context: CliContext): Promise<void> {
  const { config, log } = setup(cmd);
  const metrics = createMetrics();
  log.debug({ config: redactConfig(config) }, 'effective configuration');
  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch((err: unknown) => log.error({ err }, 'error while stopping'));
  };
  try {
    // Neither role waits for Redis here: the port is bound at once and /readyz says 503 until
    // Redis answers, and SIGTERM is obeyed meanwhile.
    // Loaded only for the worker role: it pulls in the Kubernetes client and the stores' SDKs, ~35 MiB
    // of heap (mostly module source, per a heap snapshot of the webhook) that the webhook never uses.
    const worker = roles.includes('worker')
      ? await (await import('../worker/role.js')).startWorkerRole({ config, log, metrics })
      : undefined;
    if (worker) closers.push(() => worker.close());
    const webhook = roles.includes('webhook')
      ? createWebhookRole({ config, log, metrics, ...(worker ? { alsoReady: () => worker.ready() } : {}) })
      : undefined;
    if (webhook) closers.push(() => webhook.close());

    const ready = () => (webhook ? webhook.recorder.status().redisUp : true) && (worker ? worker.ready() : true);
    const app = webhook?.app ?? createHealthApp({ metrics, ready, log, metricsAuth: config.metricsAuth });
    const tls = webhook ? await startServingTls(config, log) : undefined;
    if (tls) closers.push(() => tls.close());
    const { headersTimeout, requestTimeout, keepAliveTimeout, maxConnections } = config.webhook;
    const http = await listen(app, config.webhook.listen, {
      tls: tls?.tls,
      limits: { headersTimeout, requestTimeout, keepAliveTimeout, maxConnections },
    });
    tls?.attach(http);
    closers.push(() => http.close());

    const base = http.url.replace('//0.0.0.0:', '//127.0.0.1:');
    log.info(
      { roles, listen: http.url, redis: describeRedis(config.redis), cluster: config.cluster },
      `etcd-autobackup ${roles.join(' + ')} running`,
    );
    const lines = [`etcd-autobackup ${roles.join(' + ')} for cluster "${config.cluster}" on ${http.url}`];
    if (webhook) {
      lines.push(`  audit webhook      POST ${base}/audit`, `  admission webhook  POST ${base}/admission`);
      lines.push(
        webhook.dashboardPath
          ? `  dashboard          ${base}${webhook.dashboardPath} (user ${config.dashboard.user})`
          : '  dashboard          off (set --dashboard-user and --dashboard-password)',
      );
      if (webhook.watch)
        lines.push(`  etcd watch         ${config.watch.prefix} on ${config.etcd.endpoints.join(',')}`);
    }
    if (worker)
      lines.push(`  snapshots          ${worker.store.location} (debounce ${config.queue.debounceWindow / 1000}s)`);
    lines.push(`  health             ${base}/healthz  ${base}/readyz  ${base}/metrics`);
    context.print(lines.join('\n'));

    await new Promise<void>((resolve) => {
      if (context.signal.aborted) resolve();
      else context.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    log.info('stopping: finishing or abandoning the running snapshot, sending pending triggers');
  } finally {
    // The pool abandons a running snapshot after shutdownGrace; whatever still waits after that
    // (a Redis that never answers) must not keep the process past the pod's grace period.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), config.queue.shutdownGrace + 2_000);
      timer.unref();
    });
    const result = await Promise.race([close(), deadline]);
    clearTimeout(timer);
    if (result === 'late') log.warn('stopping took longer than queue.shutdownGrace; exiting anyway');
  }
}
