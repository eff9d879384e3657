import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countTrigger, createMetrics } from '../../core/metrics.js';

const NAMES = [
  'etcd_autobackup_triggers_total',
  'etcd_autobackup_triggers_ignored_total',
  'etcd_autobackup_pending_triggers',
  'etcd_autobackup_redis_up',
  'etcd_autobackup_queue_jobs',
  'etcd_autobackup_snapshot_last_success_timestamp_seconds',
  'etcd_autobackup_snapshot_duration_seconds',
  'etcd_autobackup_snapshot_size_bytes',
  'etcd_autobackup_snapshot_failures_total',
  'etcd_autobackup_snapshots_total',
  'etcd_autobackup_http_requests_total',
  'etcd_autobackup_notification_failures_total',
  'etcd_autobackup_prune_runs_total',
  'etcd_autobackup_pruned_total',
  'etcd_autobackup_drill_last_success_timestamp_seconds',
  'etcd_autobackup_drill_duration_seconds',
  'etcd_autobackup_drills_total',
  'etcd_autobackup_uncovered_changes',
  'etcd_autobackup_oldest_uncovered_change_age_seconds',
  'etcd_autobackup_snapshot_retries_total',
  'etcd_autobackup_oldest_pending_change_age_seconds',
  'etcd_autobackup_store_setup_warnings_total',
  // delta log
  'etcd_autobackup_delta_lag_seconds',
  'etcd_autobackup_delta_segments_total',
  'etcd_autobackup_delta_events_total',
  'etcd_autobackup_delta_stored_bytes_total',
  'etcd_autobackup_delta_gaps_total',
  'etcd_autobackup_delta_writer_leader',
  'etcd_autobackup_delta_buffered_bytes',
  'etcd_autobackup_delta_write_failures_total',
];

test('createMetrics defines every service metric under etcd_autobackup_*, plus process metrics', async () => {
  const metrics = createMetrics();
  const own = (await metrics.registry.getMetricsAsJSON())
    .map((m) => m.name)
    .filter((n) => !/^(process|nodejs)_/.test(n));
  assert.deepEqual(own.sort(), [...NAMES].sort());
  assert.ok(metrics.registry.getSingleMetric('process_cpu_user_seconds_total'));
  assert.equal(
    createMetrics({ defaultMetrics: false }).registry.getSingleMetric('process_cpu_user_seconds_total'),
    undefined,
  );
});

test('two registries are independent (one per process, several per test run)', async () => {
  const a = createMetrics({ defaultMetrics: false });
  const b = createMetrics({ defaultMetrics: false });
  a.redisUp.set(1);
  assert.match(await a.registry.metrics(), /^etcd_autobackup_redis_up 1$/m);
  assert.match(await b.registry.metrics(), /^etcd_autobackup_redis_up 0$/m);
});

test('countTrigger keeps the counted/ignored total and the per-reason counter in step', async () => {
  const metrics = createMetrics({ defaultMetrics: false });
  countTrigger(metrics, 'etcd-watch');
  countTrigger(metrics, 'etcd-watch', 'prefix');
  countTrigger(metrics, 'etcd-watch', 'prefix');
  const text = await metrics.registry.metrics();
  assert.match(text, /^etcd_autobackup_triggers_total\{source="etcd-watch",result="counted"\} 1$/m);
  assert.match(text, /^etcd_autobackup_triggers_total\{source="etcd-watch",result="ignored"\} 2$/m);
  assert.match(text, /^etcd_autobackup_triggers_ignored_total\{source="etcd-watch",reason="prefix"\} 2$/m);
  // Sources start at zero so alerts see them before their first signal.
  assert.match(text, /^etcd_autobackup_triggers_total\{source="schedule",result="counted"\} 0$/m);
});

test('snapshot duration buckets span 1 s to 1 h', async () => {
  const metrics = createMetrics({ defaultMetrics: false });
  metrics.snapshotDuration.observe({ cluster: 'prod' }, 42);
  const text = await metrics.registry.metrics();
  const bounds = [
    ...text.matchAll(/^etcd_autobackup_snapshot_duration_seconds_bucket\{le="([^"]+)",cluster="prod"\} (\d+)$/gm),
  ].map((m) => [m[1], Number(m[2])]);
  assert.deepEqual(bounds[0], ['1', 0]);
  assert.deepEqual(bounds.at(-2), ['3600', 1]);
  assert.deepEqual(bounds.at(-1), ['+Inf', 1]);
});
