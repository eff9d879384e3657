/**
 * `etcd-autobackup status [--json]`: what on-call runs first. The newest snapshot, the newest one
 * proven restorable by a drill, the last failure (snapshot job or drill), the queue and the
 * triggers not yet in a snapshot. Reads only; exits 1 when Redis cannot be reached (after printing
 * what the store says).
 */
import type { Command } from 'commander';
import { formatBytes, formatDuration } from '../../core/duration.js';
import { readQueueStatus, type QueueStatus } from '../../core/queue/index.js';
import { listSnapshots } from '../../worker/catalog.js';
import { readDrillRecord, type DrillRecord } from '../../worker/drill.js';
import type { Manifest } from '../../worker/manifest.js';
import { mapLimit } from '../../worker/map-limit.js';
import { openStore } from '../../worker/stores/open.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';

interface SnapshotSummary {
  id: string;
  createdAt: string;
  revision: number;
  dbSize: number;
  storedSize: number;
}

export interface StatusReport {
  cluster: string;
  store: string;
  snapshots: number;
  newest: SnapshotSummary | null;
  /** The newest snapshot whose last drill passed, with that drill's time. */
  newestProvenRestorable: (SnapshotSummary & { drilledAt: string }) | null;
  /** The most recent drill of any snapshot. */
  lastDrill: Pick<DrillRecord, 'id' | 'at' | 'ok' | 'failure'> | null;
  /** The most recent failure: a snapshot job attempt or a drill, whichever is newer. */
  lastFailure: { kind: 'snapshot' | 'drill'; at: string; id: string; reason: string; retrying?: boolean } | null;
  queue: QueueStatus;
}

function summary(m: Manifest): SnapshotSummary {
  return { id: m.id, createdAt: m.createdAt, revision: m.etcd.revision, dbSize: m.dbSize, storedSize: m.storedSize };
}

/** Pure: the report from what the store and the queue said. `snapshots` is newest first. */
export function statusReport(
  cluster: string,
  store: string,
  snapshots: readonly Manifest[],
  drills: readonly (DrillRecord | undefined)[],
  queue: QueueStatus,
): StatusReport {
  const newest = snapshots[0];
  const provenAt = snapshots.findIndex((_, i) => drills[i]?.ok === true);
  const proven = provenAt >= 0 ? snapshots[provenAt] : undefined;
  const records = drills.filter((d): d is DrillRecord => d !== undefined).sort((a, b) => b.at.localeCompare(a.at));
  const lastDrill = records[0];
  const failedDrill = records.find((d) => !d.ok);
  const failedJob = queue.reachable ? queue.lastFailure : undefined;
  const candidates: NonNullable<StatusReport['lastFailure']>[] = [];
  if (failedDrill)
    candidates.push({ kind: 'drill', at: failedDrill.at, id: failedDrill.id, reason: failedDrill.failure ?? 'failed' });
  if (failedJob)
    candidates.push({
      kind: 'snapshot',
      at: new Date(failedJob.at).toISOString(),
      id: failedJob.jobId,
      reason: failedJob.reason,
      retrying: failedJob.retrying,
    });
  candidates.sort((a, b) => b.at.localeCompare(a.at));
  return {
    cluster,
    store,
    snapshots: snapshots.length,
    newest: newest ? summary(newest) : null,
    newestProvenRestorable: proven ? { ...summary(proven), drilledAt: drills[provenAt]?.at ?? '' } : null,
    lastDrill: lastDrill
      ? {
          id: lastDrill.id,
          at: lastDrill.at,
          ok: lastDrill.ok,
          ...(lastDrill.failure !== undefined ? { failure: lastDrill.failure } : {}),
        }
      : null,
    lastFailure: candidates[0] ?? null,
    queue,
  };
}

const time = (iso: string): string => iso.replace(/\.\d+Z$/, 'Z');
const ago = (iso: string, nowMs: number): string => `${formatDuration(Math.max(0, nowMs - Date.parse(iso)))} ago`;
const at = (ms: number, nowMs: number): string =>
  `${time(new Date(ms).toISOString())} (${ms <= nowMs ? 'due now' : `in ${formatDuration(ms - nowMs)}`})`;

/** Pure: the report as the lines an operator reads. */
export function describeStatus(r: StatusReport, nowMs: number): string {
  const lines = [`cluster ${r.cluster}, store ${r.store}, ${r.snapshots} snapshots`];
  const row = (label: string, text: string) => lines.push(`${label.padEnd(19)} ${text}`);
  row(
    'newest snapshot',
    r.newest
      ? `${r.newest.id}  ${time(r.newest.createdAt)} (${ago(r.newest.createdAt, nowMs)}), revision ${r.newest.revision}, ${formatBytes(r.newest.storedSize)} stored`
      : 'none yet',
  );
  row(
    'proven restorable',
    r.newestProvenRestorable
      ? `${r.newestProvenRestorable.id}  drill passed ${time(r.newestProvenRestorable.drilledAt)} (${ago(r.newestProvenRestorable.drilledAt, nowMs)})` +
          (r.newest && r.newest.id !== r.newestProvenRestorable.id ? ', newer snapshots not proven yet' : '')
      : 'none: no snapshot has passed a drill (run "etcd-autobackup drill", or set drill.schedule)',
  );
  row(
    'last drill',
    r.lastDrill
      ? `${r.lastDrill.id}  ${r.lastDrill.ok ? 'passed' : `FAILED: ${r.lastDrill.failure ?? ''}`} ${time(r.lastDrill.at)}`
      : 'never',
  );
  row(
    'last failure',
    r.lastFailure
      ? `${r.lastFailure.kind} ${r.lastFailure.id} ${time(r.lastFailure.at)} (${ago(r.lastFailure.at, nowMs)})` +
          `${r.lastFailure.retrying ? ', retrying' : ''}: ${r.lastFailure.reason}`
      : 'none',
  );
  const q = r.queue;
  if (!q.reachable) {
    row('queue', `UNREACHABLE at ${q.redis}: ${q.error}`);
    return lines.join('\n');
  }
  const counts = (c: Record<string, number>) =>
    ['waiting', 'delayed', 'active', 'failed', 'completed'].map((s) => `${c[s] ?? 0} ${s}`).join(', ');
  row('queue', `${q.redis}`);
  row('  snapshot jobs', counts(q.snapshots));
  row('  drill jobs', counts(q.drills));
  row(
    '  next scheduled',
    [
      `snapshot ${q.nextScheduledSnapshot !== undefined ? at(q.nextScheduledSnapshot, nowMs) : 'off (queue.maxInterval 0)'}`,
      `drill ${q.nextScheduledDrill !== undefined ? at(q.nextScheduledDrill, nowMs) : 'off (drill.schedule 0)'}`,
    ].join('; '),
  );
  const triggers = q.openWindows.reduce((n, w) => n + Object.values(w.counts).reduce((a, b) => a + (b ?? 0), 0), 0);
  row('pending triggers', q.openWindows.length === 0 ? 'none' : `${triggers} in ${q.openWindows.length} windows`);
  for (const w of q.openWindows) row(`  window ${w.id}`, `ends ${at(w.endsAt, nowMs)}: ${describeCounts(w.counts)}`);
  for (const j of q.pending)
    row(
      `  job ${j.state}`,
      `${j.jobId} runs ${at(j.runsAt, nowMs)}${j.attemptsMade > 0 ? `, ${j.attemptsMade} failed attempts, last: ${j.lastError ?? '?'}` : ''}`,
    );
  return lines.join('\n');
}

function describeCounts(counts: Record<string, number | undefined>): string {
  return Object.entries(counts)
    .map(([s, n]) => `${s}:${n ?? 0}`)
    .join(', ');
}

export function registerStatus(program: Command, context: CliContext): void {
  withConfigOptions(
    program
      .command('status')
      .description(
        'newest snapshot, newest proven restorable, last failure, queue and pending triggers of the cluster: run this first',
      )
      .option('--json', 'print the report as JSON'),
  ).action(async (opts: { json?: boolean }, cmd: Command) => {
    const { config, log } = setup(cmd);
    const store = await openStore(config);
    let report: StatusReport;
    try {
      const [snapshots, queue] = await Promise.all([
        listSnapshots(store, config.cluster, {
          onInvalid: (key, problem) => log.warn({ key }, `skipping manifest ${key}: ${problem}`),
        }),
        readQueueStatus(config),
      ]);
      const drills = await mapLimit(snapshots, 8, (m) => readDrillRecord(store, config.cluster, m.id));
      report = statusReport(config.cluster, store.location, snapshots, drills, queue);
    } finally {
      await store.close();
    }
    context.print(opts.json ? JSON.stringify(report, null, 2) : describeStatus(report, Date.now()));
    if (!report.queue.reachable)
      throw new Error(
        `Redis at ${report.queue.redis} cannot be reached (${report.queue.error}): check redis.url / --redis-url and redis.password`,
      );
  });
}
