import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SnapshotJobData } from '../../core/queue/contract.js';
import { oldestPendingChangeMs } from '../../worker/pool.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');

function job(window: string, ageMs: number, cluster = 'prod'): { data: SnapshotJobData; timestamp: number } {
  return { data: { cluster, window, causes: { audit: 1 }, samples: [] }, timestamp: NOW - ageMs };
}

test('the oldest pending change is the oldest window or manual job of the cluster', () => {
  const jobs = [
    job('2026-01-01T11:55:00.000Z', 300_000),
    job('manual-x', 900_000),
    job('2026-01-01T11:59:00.000Z', 60_000),
  ];
  assert.equal(oldestPendingChangeMs(jobs, 'prod', NOW), 900_000);
});

test('no pending change is 0; the scheduled job, other clusters and missing jobs do not count', () => {
  assert.equal(oldestPendingChangeMs([], 'prod', NOW), 0);
  // The maxInterval job sits delayed for up to a day by design: it must not look like an old change.
  const jobs = [job('schedule', 86_000_000), job('2026-01-01T10:00:00.000Z', 7_200_000, 'other'), undefined];
  assert.equal(oldestPendingChangeMs(jobs, 'prod', NOW), 0);
});
