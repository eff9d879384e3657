/**
 * The /metrics of real `serve` processes (webhook + worker in one registry), after they have done
 * what the alert rules and the dashboard watch: one healthy service took a snapshot, drilled it,
 * pruned and writes the delta log; one whose store does not answer failed its lifecycle step and its snapshots. Their
 * series, merged, show every metric with the labels and label values it really carries.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { auditBatch, postJson, startE2eStack } from '../e2e/stack.js';
import { freePort, waitFor } from './ports.js';
import { metricValue } from './processes.js';
import { parseExposition, type Exposition } from './promql.js';
import { tempDir } from './tmp.js';

export async function scrapeRealService(): Promise<Exposition> {
  const stack = await startE2eStack();
  const dir = await tempDir('scrape');
  const fail = (err: unknown): never => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${stack.describe()}`);
  };
  try {
    const healthyConfig = join(dir.path, 'healthy.yaml');
    await writeFile(healthyConfig, 'drill:\n  afterSnapshot: 1\ndelta:\n  enabled: true\n  flushInterval: 500ms\n');
    const brokenConfig = join(dir.path, 'broken.yaml');
    // Its own queue keys, so the healthy worker never takes its jobs.
    await writeFile(brokenConfig, 'redis:\n  prefix: broken\n');
    const closed = await freePort();
    const healthy = await stack.processes.start(
      'serve',
      [...stack.flags({ windowMs: 1000 }), '--config', healthyConfig],
      {
        name: 'serve-healthy',
      },
    );
    const broken = await stack.processes.start(
      'serve',
      [
        ...['--cluster', 'broken', '--redis-url', stack.redis.url, '--endpoints', stack.etcd.endpoint],
        ...['--store', 's3://bucket/etcd', '--s3-endpoint', `http://127.0.0.1:${closed}`, '--s3-region', 'us-east-1'],
        ...['--s3-force-path-style', '--s3-access-key-id', 'AKIAEXAMPLE', '--s3-secret-access-key', 'secret-value'],
        ...['--lifecycle', '--debounce-window', '1000ms', '--max-interval', '0', '--config', brokenConfig],
      ],
      { name: 'serve-broken' },
    );
    for (const p of [healthy, broken]) {
      const batch = auditBatch(4, 'scrape');
      // One the filters drop, so the ignored-trigger counter has its labels too.
      const first = batch.items[0];
      if (first) batch.items[0] = { ...first, stage: 'RequestReceived' };
      const r = await postJson(`${p.url}/audit`, batch);
      if (r.status !== 200) fail(new Error(`${p.name} /audit answered ${r.status}`));
    }
    const text = async (url: string) => (await fetch(`${url}/metrics`)).text();
    const has = (t: string, name: string, labels: Record<string, string> = {}) =>
      (metricValue(t, name, labels) ?? 0) > 0;
    await waitFor(
      'a snapshot, a drill and a retention run of the healthy service',
      async () => {
        const t = await text(healthy.url);
        return (
          has(t, 'etcd_autobackup_drills_total', { result: 'success' }) &&
          has(t, 'etcd_autobackup_prune_runs_total', { result: 'success' }) &&
          has(t, 'etcd_autobackup_queue_jobs', { state: 'completed' }) &&
          has(t, 'etcd_autobackup_delta_writer_leader')
        );
      },
      120_000,
      500,
    ).catch(fail);
    await waitFor(
      'a failed lifecycle step and snapshot of the broken service',
      async () => {
        const t = await text(broken.url);
        return (
          has(t, 'etcd_autobackup_store_setup_warnings_total') && has(t, 'etcd_autobackup_snapshot_failures_total')
        );
      },
      120_000,
      500,
    ).catch(fail);
    const exposition = parseExposition(await text(healthy.url));
    return parseExposition(await text(broken.url), exposition);
  } finally {
    await stack.stop();
    await dir.remove();
  }
}
