/**
 * The one Prometheus registry of a process. Every metric the service exposes is defined here, so
 * names, labels and help texts stay consistent between the webhook, the queue and the worker.
 * Labels carry only bounded, non-secret values (sources, reasons, states, cluster names).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { TRIGGER_SOURCES, type TriggerSource } from './cause.js';

const PREFIX = 'etcd_autobackup_';

export interface Metrics {
  readonly registry: Registry;
  /** Trigger signals seen, by source and whether they counted toward a snapshot. */
  readonly triggers: Counter<'source' | 'result'>;
  /** Trigger signals dropped by the filters, by the filter that dropped them. */
  readonly triggersIgnored: Counter<'source' | 'reason'>;
  /** Triggers held in memory while Redis is unreachable. */
  readonly pendingTriggers: Gauge;
  /** 1 when Redis answered the last check, else 0. */
  readonly redisUp: Gauge;
  /** Snapshot jobs in the queue by state: waiting, delayed, active, failed, completed. */
  readonly queueJobs: Gauge<'state'>;
  readonly snapshotLastSuccess: Gauge<'cluster'>;
  readonly snapshotDuration: Histogram<'cluster'>;
  /** Size of the last snapshot: kind=db as read from etcd, kind=stored after transforms. */
  readonly snapshotSize: Gauge<'cluster' | 'kind'>;
  readonly snapshotFailures: Counter<'cluster' | 'stage'>;
  readonly snapshots: Counter<'cluster' | 'result'>;
  /** HTTP requests by route (a fixed set, never the raw path) and status code. */
  readonly httpRequests: Counter<'route' | 'code'>;
  /** Retention runs (after a snapshot or on demand), by result; a failure never fails the snapshot. */
  readonly pruneRuns: Counter<'cluster' | 'result'>;
  /** Restore drills (docs/drills.md). */
  readonly drillLastSuccess: Gauge<'cluster'>;
  readonly drillDuration: Histogram<'cluster'>;
  readonly drills: Counter<'cluster' | 'result'>;
  /** Kubernetes Events and notifications that could not be sent (never fails a snapshot). */
  readonly notificationFailures: Counter<'channel' | 'reason'>;
  /** Objects deleted by retention: kind=snapshot (manifest and object as one) or kind=orphan. */
  readonly pruned: Counter<'cluster' | 'kind'>;
  /** Triggers in snapshot jobs that failed at least once and are being retried. */
  readonly uncoveredChanges: Gauge<'cluster'>;
  /** Age of the oldest of those jobs; 0 when there is none. */
  readonly oldestUncoveredChange: Gauge<'cluster'>;
  /** Failed snapshot attempts that will be retried. */
  readonly snapshotRetries: Counter<'cluster'>;
  /** Age of the oldest change in no published snapshot yet (its job still pending); 0 when none. */
  readonly oldestPendingChange: Gauge<'cluster'>;
  /** Store steps at worker start that failed without stopping it (step=lifecycle). */
  readonly storeSetupWarnings: Counter<'cluster' | 'step'>;
  // --- delta log (docs/delta-log.md)
  /** Now minus the time up to which every change is stored in the log; 0 while caught up. */
  readonly deltaLag: Gauge<'cluster'>;
  readonly deltaSegments: Counter<'cluster'>;
  readonly deltaEvents: Counter<'cluster'>;
  /** Bytes of segment objects stored (after compression and encryption). */
  readonly deltaStoredBytes: Counter<'cluster'>;
  /** Gaps found in the log (each leads to a full snapshot and a new chain), by reason. */
  readonly deltaGaps: Counter<'cluster' | 'reason'>;
  /** 1 while this process holds the cluster's delta-writer lock. */
  readonly deltaLeader: Gauge<'cluster'>;
  /** Event bytes held in memory, not yet stored. */
  readonly deltaBuffered: Gauge<'cluster'>;
  /** Failed attempts to store a segment (retried; the events stay buffered). */
  readonly deltaWriteFailures: Counter<'cluster'>;
  // --- end delta log
}

export interface MetricsOptions {
  /** Node process metrics (CPU, memory, event loop, GC) under their standard names; on by default. */
  defaultMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  // Standard process_* / nodejs_* names, unprefixed, so stock Node.js dashboards work as they are.
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const metrics: Metrics = {
    registry,
    triggers: new Counter({
      name: `${PREFIX}triggers_total`,
      help: 'Change signals received, by source and result (counted or ignored).',
      labelNames: ['source', 'result'] as const,
      registers,
    }),
    triggersIgnored: new Counter({
      name: `${PREFIX}triggers_ignored_total`,
      help: 'Change signals ignored by the filters, by source and reason.',
      labelNames: ['source', 'reason'] as const,
      registers,
    }),
    pendingTriggers: new Gauge({
      name: `${PREFIX}pending_triggers`,
      help: 'Triggers held in memory while Redis is unreachable.',
      registers,
    }),
    redisUp: new Gauge({
      name: `${PREFIX}redis_up`,
      help: 'Whether Redis is reachable (1) or not (0).',
      registers,
    }),
    queueJobs: new Gauge({
      name: `${PREFIX}queue_jobs`,
      help: 'Snapshot jobs in the queue, by state.',
      labelNames: ['state'] as const,
      registers,
    }),
    snapshotLastSuccess: new Gauge({
      name: `${PREFIX}snapshot_last_success_timestamp_seconds`,
      help: 'Unix time of the last successful snapshot.',
      labelNames: ['cluster'] as const,
      registers,
    }),
    snapshotDuration: new Histogram({
      name: `${PREFIX}snapshot_duration_seconds`,
      help: 'Time to take, verify and store one snapshot.',
      labelNames: ['cluster'] as const,
      buckets: [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600],
      registers,
    }),
    snapshotSize: new Gauge({
      name: `${PREFIX}snapshot_size_bytes`,
      help: 'Size of the last snapshot: kind=db as read from etcd, kind=stored as written to the store.',
      labelNames: ['cluster', 'kind'] as const,
      registers,
    }),
    snapshotFailures: new Counter({
      name: `${PREFIX}snapshot_failures_total`,
      help: 'Failed snapshot attempts, by the stage that failed.',
      labelNames: ['cluster', 'stage'] as const,
      registers,
    }),
    snapshots: new Counter({
      name: `${PREFIX}snapshots_total`,
      help: 'Snapshot jobs finished, by result.',
      labelNames: ['cluster', 'result'] as const,
      registers,
    }),
    httpRequests: new Counter({
      name: `${PREFIX}http_requests_total`,
      help: 'HTTP requests served, by route and status code.',
      labelNames: ['route', 'code'] as const,
      registers,
    }),
    drillLastSuccess: new Gauge({
      name: `${PREFIX}drill_last_success_timestamp_seconds`,
      help: 'Unix time of the last drill that proved a snapshot restorable.',
      labelNames: ['cluster'] as const,
      registers,
    }),
    drillDuration: new Histogram({
      name: `${PREFIX}drill_duration_seconds`,
      help: 'Time a restore drill took: download, restore, boot, checks.',
      labelNames: ['cluster'] as const,
      buckets: [5, 15, 30, 60, 120, 300, 600, 1800],
      registers,
    }),
    drills: new Counter({
      name: `${PREFIX}drills_total`,
      help: 'Restore drills finished, by result (success or failure).',
      labelNames: ['cluster', 'result'] as const,
      registers,
    }),
    notificationFailures: new Counter({
      name: `${PREFIX}notification_failures_total`,
      help: 'Kubernetes Events (channel=events) and notifications (channel=webhook) not delivered, by reason.',
      labelNames: ['channel', 'reason'] as const,
      registers,
    }),
    pruneRuns: new Counter({
      name: `${PREFIX}prune_runs_total`,
      help: 'Retention runs, by result (success or failure); a failed run deletes nothing more and never fails the snapshot.',
      labelNames: ['cluster', 'result'] as const,
      registers,
    }),
    pruned: new Counter({
      name: `${PREFIX}pruned_total`,
      help: 'Snapshots (manifest and object) and orphaned objects deleted by retention.',
      labelNames: ['cluster', 'kind'] as const,
      registers,
    }),
    uncoveredChanges: new Gauge({
      name: `${PREFIX}uncovered_changes`,
      help: 'Changes whose snapshot job has failed at least once and is being retried: not yet in any published snapshot.',
      labelNames: ['cluster'] as const,
      registers,
    }),
    oldestUncoveredChange: new Gauge({
      name: `${PREFIX}oldest_uncovered_change_age_seconds`,
      help: 'Age of the oldest snapshot job being retried after a failure (0 when none).',
      labelNames: ['cluster'] as const,
      registers,
    }),
    snapshotRetries: new Counter({
      name: `${PREFIX}snapshot_retries_total`,
      help: 'Failed snapshot attempts that will be retried (queue.backoff doubling up to queue.backoffMax).',
      labelNames: ['cluster'] as const,
      registers,
    }),
    oldestPendingChange: new Gauge({
      name: `${PREFIX}oldest_pending_change_age_seconds`,
      help: 'Age of the oldest change not yet in a published snapshot: its window or manual job is still pending, being retried or running (0 when none). Scheduled snapshots carry no change.',
      labelNames: ['cluster'] as const,
      registers,
    }),
    storeSetupWarnings: new Counter({
      name: `${PREFIX}store_setup_warnings_total`,
      help: 'Store steps at worker start (the lifecycle rule) that failed and were left for later, by step.',
      labelNames: ['cluster', 'step'] as const,
      registers,
    }),
    // --- delta log
    deltaLag: new Gauge({
      name: `${PREFIX}delta_lag_seconds`,
      help: 'Now minus the time up to which every etcd change is stored in the delta log (0 while caught up).',
      labelNames: ['cluster'] as const,
      registers,
    }),
    deltaSegments: new Counter({
      name: `${PREFIX}delta_segments_total`,
      help: 'Delta-log segments published.',
      labelNames: ['cluster'] as const,
      registers,
    }),
    deltaEvents: new Counter({
      name: `${PREFIX}delta_events_total`,
      help: 'etcd events stored in published delta-log segments.',
      labelNames: ['cluster'] as const,
      registers,
    }),
    deltaStoredBytes: new Counter({
      name: `${PREFIX}delta_stored_bytes_total`,
      help: 'Bytes of delta-log segment objects stored, after compression and encryption.',
      labelNames: ['cluster'] as const,
      registers,
    }),
    deltaGaps: new Counter({
      name: `${PREFIX}delta_gaps_total`,
      help: 'Gaps found in the delta log, by reason; each is recorded and followed by a full snapshot and a new chain.',
      labelNames: ['cluster', 'reason'] as const,
      registers,
    }),
    deltaLeader: new Gauge({
      name: `${PREFIX}delta_writer_leader`,
      help: "1 while this process holds the cluster's delta-log writer lock, else 0.",
      labelNames: ['cluster'] as const,
      registers,
    }),
    deltaBuffered: new Gauge({
      name: `${PREFIX}delta_buffered_bytes`,
      help: 'Event bytes the delta-log writer holds in memory, not yet stored.',
      labelNames: ['cluster'] as const,
      registers,
    }),
    deltaWriteFailures: new Counter({
      name: `${PREFIX}delta_write_failures_total`,
      help: 'Failed attempts to store a delta-log segment; retried with the events kept in memory.',
      labelNames: ['cluster'] as const,
      registers,
    }),
    // --- end delta log
  };

  // Zero series from the start, so rate() and alerts see a source before its first signal.
  for (const source of TRIGGER_SOURCES) {
    for (const result of ['counted', 'ignored']) metrics.triggers.inc({ source, result }, 0);
  }
  return metrics;
}

/**
 * Counts `n` trigger signals (default one): counted when `ignoredFor` is undefined, else ignored for
 * that reason. Every trigger source counts through here so the two counters never disagree.
 */
export function countTrigger(metrics: Metrics, source: TriggerSource, ignoredFor?: string, n = 1): void {
  if (ignoredFor === undefined) {
    metrics.triggers.inc({ source, result: 'counted' }, n);
    return;
  }
  metrics.triggers.inc({ source, result: 'ignored' }, n);
  metrics.triggersIgnored.inc({ source, reason: ignoredFor }, n);
}
