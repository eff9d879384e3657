/**
 * Which snapshots to keep, and why: pure functions over times and names, no I/O, so every rule can
 * be tested with a fixed clock. prune.ts does the listing and the deleting.
 *
 * The counts work like restic's `forget`: `keepLast` keeps the newest N; `hourly` keeps the newest
 * snapshot of each of the N most recent hours that have one, and likewise by day, ISO week and
 * month (all in UTC, so a DST change never shifts a bucket). A snapshot kept by several rules is
 * kept once, with every reason. Whatever the counts say, the newest snapshot whose last drill
 * passed and the newest verified snapshot are kept.
 */
import type { RetentionConfig } from '../core/config/schema.js';
import { MANIFEST_SUFFIX } from './manifest.js';

/** drill.ts's record suffix; repeated here so this pure module imports no I/O. */
export const DRILL_SUFFIX = '.drill.json';

export type RetentionPolicy = Pick<RetentionConfig, 'keepLast' | 'hourly' | 'daily' | 'weekly' | 'monthly'>;

/** What the policy needs to know about one published snapshot. */
export interface Candidate {
  id: string;
  createdAt: Date;
  revision: number;
  /** Its bytes were checked against etcd's SHA-256 trailer when it was taken. */
  verified: boolean;
  /** Its last drill passed (drill.ts): restored, booted and matched the source. */
  drilled?: boolean;
}

export interface Decision<C extends Candidate = Candidate> {
  snapshot: C;
  /** Why it stays, e.g. `last 1/10`, `daily 2026-11-24`, `newest verified`; empty when it goes. */
  reasons: string[];
}

export interface RetentionPlan<C extends Candidate = Candidate> {
  /** Newest first. */
  keep: Decision<C>[];
  /** Newest first; each with no reason to stay. */
  remove: Decision<C>[];
}

type Bucket = 'hourly' | 'daily' | 'weekly' | 'monthly';

const BUCKETS: readonly { rule: Bucket; of: (at: Date) => string }[] = [
  { rule: 'hourly', of: (at) => at.toISOString().slice(0, 13) },
  { rule: 'daily', of: (at) => at.toISOString().slice(0, 10) },
  { rule: 'weekly', of: isoWeek },
  { rule: 'monthly', of: (at) => at.toISOString().slice(0, 7) },
];

/** Splits `snapshots` into those to keep and those to remove. Order of the input does not matter. */
export function planRetention<C extends Candidate>(snapshots: readonly C[], policy: RetentionPolicy): RetentionPlan<C> {
  const sorted = [...snapshots].sort(newestFirst);
  const decisions: Decision<C>[] = sorted.map((snapshot) => ({ snapshot, reasons: [] }));

  decisions.slice(0, policy.keepLast).forEach((d, i) => d.reasons.push(`last ${i + 1}/${policy.keepLast}`));
  for (const { rule, of } of BUCKETS) {
    const limit = policy[rule];
    let taken = 0;
    let previous: string | undefined;
    for (const d of decisions) {
      if (taken >= limit) break;
      const bucket = of(d.snapshot.createdAt);
      // Newest first, so the first snapshot seen in a bucket is that bucket's newest.
      if (bucket === previous) continue;
      previous = bucket;
      taken++;
      d.reasons.push(`${rule} ${bucket}`);
    }
  }
  // Proven restorable beats merely verified: keep it first, so a pruned history never loses it.
  const newestDrilled = decisions.find((d) => d.snapshot.drilled === true);
  if (newestDrilled) newestDrilled.reasons.push('newest proven restorable');
  const newestVerified = decisions.find((d) => d.snapshot.verified);
  if (newestVerified) newestVerified.reasons.push('newest verified');

  return {
    keep: decisions.filter((d) => d.reasons.length > 0),
    remove: decisions.filter((d) => d.reasons.length === 0),
  };
}

/** `2026-W48`: the ISO 8601 week (Monday first; week 1 holds the year's first Thursday). */
export function isoWeek(at: Date): string {
  const day = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()));
  const weekday = day.getUTCDay() || 7;
  // The Thursday of this week decides which year the week belongs to.
  day.setUTCDate(day.getUTCDate() + 4 - weekday);
  const yearStart = Date.UTC(day.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((day.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${day.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

function newestFirst(a: Candidate, b: Candidate): number {
  return (
    b.createdAt.getTime() - a.createdAt.getTime() || b.revision - a.revision || (b.id < a.id ? -1 : b.id > a.id ? 1 : 0)
  );
}

// ---------------------------------------------------------------------------------------------
// Names: what this service writes under <cluster>/snapshots/, and nothing else, is ours to delete.

/** `20261124T032800Z-r12345-a1b2`, as newSnapshotId makes them. */
const ID = String.raw`\d{8}T\d{6}Z-r\d+-[0-9a-f]+`;
// Objects: `.db` plus a codec's extension, then optionally `.age` (age encryption appends it).
const OBJECT = String.raw`\.db(?:\.gz|\.zst)?(?:\.age)?`;
const OURS = new RegExp(
  String.raw`^(${ID})(${OBJECT}|${MANIFEST_SUFFIX.replace(/\./g, '\\.')}|${DRILL_SUFFIX.replace(/\./g, '\\.')})$`,
);

export type OwnName = { id: string; kind: 'object' | 'manifest' | 'drill' };

/**
 * The snapshot id and kind of a name directly under the cluster's snapshots prefix, or undefined
 * for anything this service did not write (another tool's files, sub-folders, other suffixes).
 */
export function parseOwnName(name: string): OwnName | undefined {
  const m = OURS.exec(name);
  if (!m) return undefined;
  const kind = m[2] === MANIFEST_SUFFIX ? 'manifest' : m[2] === DRILL_SUFFIX ? 'drill' : 'object';
  return { id: m[1] as string, kind };
}

/**
 * How old an orphan must be before it is deleted: never younger than a snapshot may take, since
 * an upload in progress (or an S3 multipart upload, whose LastModified is when it began) looks
 * like an orphan until its manifest is published.
 */
export function orphanSafeAge(orphanAgeMs: number, snapshotTimeoutMs: number): number {
  return Math.max(orphanAgeMs, snapshotTimeoutMs);
}

/** Whether an orphan last modified at `modified` may go at `now`; an unknown time never may. */
export function isStale(modified: Date | undefined, now: Date, safeAgeMs: number): boolean {
  return modified !== undefined && now.getTime() - modified.getTime() > safeAgeMs;
}

// ---------------------------------------------------------------------------------------------
// The delta log (docs/delta-log.md): segments are kept while a kept full snapshot needs them.

/** What the policy needs to know about one delta-log segment or gap record. */
export interface RevisionRange {
  firstRevision: number;
  lastRevision: number;
}

export interface DeltaRetentionPlan<S extends RevisionRange, G extends { fromRevision: number; toRevision?: number }> {
  keep: S[];
  remove: S[];
  /** Gap records about history no kept snapshot reaches back to. */
  removeGaps: G[];
  /** The revision of the oldest kept snapshot; undefined when none is kept (then nothing goes). */
  oldestKeptRevision: number | undefined;
}

/**
 * A replay from a snapshot at revision S needs the events from S + 1 on, so a segment is needed
 * while its last revision is above the oldest kept snapshot's revision; older ones go. Without
 * any kept snapshot nothing is judged and nothing goes. A gap record goes once its whole range is
 * at or below that revision (no replay can meet it any more).
 */
export function planDeltaRetention<
  S extends RevisionRange,
  G extends { fromRevision: number; toRevision?: number | undefined },
>(segments: readonly S[], gaps: readonly G[], keptSnapshotRevisions: readonly number[]): DeltaRetentionPlan<S, G> {
  if (keptSnapshotRevisions.length === 0) {
    return { keep: [...segments], remove: [], removeGaps: [], oldestKeptRevision: undefined };
  }
  const oldest = Math.min(...keptSnapshotRevisions);
  return {
    keep: segments.filter((s) => s.lastRevision > oldest),
    remove: segments.filter((s) => s.lastRevision <= oldest),
    removeGaps: gaps.filter((g) => g.toRevision !== undefined && g.toRevision <= oldest),
    oldestKeptRevision: oldest,
  };
}
