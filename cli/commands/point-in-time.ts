/**
 * The point-in-time half of `etcd-autobackup restore` (docs/point-in-time-restore.md): which of
 * --to-revision, --to-time, --before and --before-revision was given, resolving it against the
 * delta log, and the replay into --data-dir.
 */
import type { Logger } from 'pino';
import { ConfigError } from '../../core/errors.js';
import type { Config } from '../../core/config/index.js';
import { loadIdentities } from '../../worker/crypto/age.js';
import { loadKeyRing } from '../../worker/crypto/keys.js';
import { readLogState, resolveTarget, type TargetSpec } from '../../worker/delta/point-in-time.js';
import { replayToRevision, type ReplayReport } from '../../worker/delta/replay.js';
import type { MemberSettings } from '../../worker/restore.js';
import type { Store } from '../../worker/stores/store.js';

export interface PointInTimeFlags {
  toRevision?: string;
  toTime?: string;
  before?: string;
  beforeRevision?: string;
  scratchDir?: string;
}

function revisionFlag(flag: string, value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < 1) {
    throw new ConfigError(`${flag} must be an etcd revision (a positive whole number), not "${value}"`);
  }
  return Number(value);
}

/** An instant with its zone: a bare local time would mean different points on the operator's and the log's clocks. */
export function parseInstant(value: string): Date {
  const zoned = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(value.trim());
  const at = new Date(value.trim());
  if (!zoned || Number.isNaN(at.getTime())) {
    throw new ConfigError(
      `--to-time must be an ISO 8601 time with its zone, e.g. 2026-12-01T14:31:00Z or 2026-12-01T15:31:00+01:00 (got "${value}")`,
    );
  }
  return at;
}

/** The target asked for, or undefined for a plain snapshot restore; more than one is a usage error. */
export function targetSpec(flags: PointInTimeFlags): TargetSpec | undefined {
  const given: TargetSpec[] = [];
  if (flags.toRevision !== undefined) given.push({ toRevision: revisionFlag('--to-revision', flags.toRevision) });
  if (flags.toTime !== undefined) given.push({ toTime: parseInstant(flags.toTime) });
  if (flags.before !== undefined) given.push({ before: flags.before });
  if (flags.beforeRevision !== undefined) {
    given.push({ beforeRevision: revisionFlag('--before-revision', flags.beforeRevision) });
  }
  if (given.length > 1) {
    throw new ConfigError('give one of --to-revision, --to-time, --before and --before-revision, not several');
  }
  return given[0];
}

export interface PointInTimeRun {
  config: Config;
  store: Store;
  log: Logger;
  spec: TargetSpec;
  dataDir: string;
  member: MemberSettings;
  scratchDir?: string | undefined;
  signal: AbortSignal;
}

export async function restoreToPoint(run: PointInTimeRun): Promise<{ report: ReplayReport; reason: string }> {
  const { config, store, log } = run;
  const read = {
    keys: await loadKeyRing(config.encryption),
    identities: await loadIdentities(config.encryption.identityFiles),
    signal: run.signal,
    onInvalid: (key: string, problem: string) => log.warn({ key }, `skipping ${key}: ${problem}`),
  };
  const state = await readLogState(store, config.cluster, read);
  const { plan, reason } = await resolveTarget(store, state, run.spec, read);
  log.info({ target: plan.target, reason, snapshot: plan.sources[0]?.snapshot.id }, 'point-in-time restore');
  const report = await replayToRevision({
    store,
    plan,
    dataDir: run.dataDir,
    etcdctl: config.etcd.etcdctl,
    etcd: config.drill.etcd,
    startTimeoutMs: config.drill.startTimeout,
    member: run.member,
    log,
    ...read,
    ...(run.scratchDir ? { scratchDir: run.scratchDir } : {}),
  });
  return { report, reason };
}

export function describeReplay(report: ReplayReport, reason: string): string {
  return [
    `target: ${reason}`,
    `replayed from snapshot ${report.snapshot.id} (revision ${report.snapshotRevision}, taken ${report.snapshot.createdAt})`,
    `applied ${report.events} events in ${report.revisions} transactions from ${report.segments} delta segments (each segment's SHA-256s verified) in ${report.replayMs} ms`,
    ...(report.leasesDropped > 0
      ? [`${report.leasesDropped} events had a lease; leases are not replayed, those keys come back without one`]
      : []),
    ...(report.scratchBoots > 1
      ? [`the scratch etcd was started ${report.scratchBoots} times: a short lease expired before it could be held`]
      : []),
    `restored revision ${report.revision} into ${report.dataDir} with ${report.tool.name} ${report.tool.version} (${report.durationMs} ms in all)`,
  ].join('\n');
}
