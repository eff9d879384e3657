/**
 * Point-in-time restore decisions (pure; tested by example, like retention.ts): which revision a
 * `--to-revision`, `--to-time`, `--before` or `--before-revision` means, which full snapshot to
 * start from and which segments to replay, and — for a target that cannot be restored — a
 * message naming the nearest revisions that can.
 *
 * A revision R is restorable when a kept full snapshot at revision S <= R exists and the log holds
 * every revision S+1..R without a gap. Any snapshot will do, not only the one a chain follows: a
 * snapshot taken after a gap (the writer enqueues one) starts the chain after it.
 */
import type { Manifest } from '../manifest.js';
import type { DeltaChain, DeltaGap, DeltaManifest } from './segment.js';

/** The target cannot be restored; the message names the nearest revisions that can. */
export class TargetError extends Error {
  override readonly name = 'TargetError';
}

/** Revisions the log holds without a gap, across chains that continue one another. */
export interface LogRun {
  startRevision: number;
  endRevision: number;
  /** In revision order, contiguous. */
  segments: DeltaManifest[];
  firstEventAt: string;
  newestEventAt: string;
}

/**
 * Joins chains where one starts right after the other ends (a chain that moved on to a newer
 * snapshot). Chains that overlap are kept apart: after a restore the cluster writes the same
 * revisions again, and two histories must never be mixed.
 */
export function logRuns(chains: readonly DeltaChain[]): LogRun[] {
  const sorted = [...chains].sort((a, b) => a.startRevision - b.startRevision || a.endRevision - b.endRevision);
  const runs: LogRun[] = [];
  for (const c of sorted) {
    const last = runs.at(-1);
    if (last && c.startRevision === last.endRevision + 1) {
      last.segments.push(...c.segments);
      last.endRevision = c.endRevision;
      last.newestEventAt = c.newestEventAt;
      continue;
    }
    runs.push({
      startRevision: c.startRevision,
      endRevision: c.endRevision,
      segments: [...c.segments],
      firstEventAt: c.segments[0]?.firstEventAt ?? c.newestEventAt,
      newestEventAt: c.newestEventAt,
    });
  }
  return runs;
}

/** A range of revisions that can be restored: from a snapshot's revision to the end of a run. */
export interface RestorableSpan {
  from: number;
  to: number;
  /** The oldest snapshot the span can start from. */
  snapshot: Manifest;
  run?: LogRun;
}

export function restorableSpans(snapshots: readonly Manifest[], runs: readonly LogRun[]): RestorableSpan[] {
  const spans: RestorableSpan[] = snapshots.map((s) => ({ from: s.etcd.revision, to: s.etcd.revision, snapshot: s }));
  for (const run of runs) {
    const starts = snapshots
      .filter((s) => s.etcd.revision >= run.startRevision - 1 && s.etcd.revision <= run.endRevision)
      .sort((a, b) => a.etcd.revision - b.etcd.revision);
    const oldest = starts[0];
    if (oldest) spans.push({ from: oldest.etcd.revision, to: run.endRevision, snapshot: oldest, run });
  }
  return spans.sort((a, b) => a.from - b.from || b.to - a.to);
}

/** One way to reach the target: a snapshot and the segments after it. */
export interface ReplaySource {
  snapshot: Manifest;
  /** The segments holding revisions snapshot.etcd.revision+1..target, in order (none for a target at the snapshot). */
  segments: DeltaManifest[];
}

export interface RestorePlan {
  target: number;
  /**
   * Best first: the newest snapshot at or below the target. A snapshot taken while etcd was written
   * to may hold a later revision than its manifest says; replay reads the real one and moves on to
   * the next source when it is past the target.
   */
  sources: ReplaySource[];
}

/** The snapshot may hold revisions up to this (its manifest's currentRevision when it was written to meanwhile). */
function upperRevision(s: Manifest): number {
  return Math.max(s.etcd.revision, s.hashKV?.currentRevision ?? s.etcd.revision);
}

export function planRestore(
  target: number,
  snapshots: readonly Manifest[],
  chains: readonly DeltaChain[],
  gaps: readonly DeltaGap[] = [],
): RestorePlan {
  if (!Number.isSafeInteger(target) || target < 1) throw new TargetError(`revision ${target} is not a revision`);
  const runs = logRuns(chains);
  const sources: ReplaySource[] = [];
  for (const s of snapshots) {
    const v = s.etcd.revision;
    if (v === target) sources.push({ snapshot: s, segments: [] });
    if (v >= target) continue;
    // The newest run wins when two overlap (the current history after a restore).
    const run = runs.filter((r) => r.startRevision - 1 <= v && r.endRevision >= target).at(-1);
    if (!run) continue;
    sources.push({
      snapshot: s,
      segments: run.segments.filter((m) => m.lastRevision > v && m.firstRevision <= target),
    });
  }
  if (sources.length === 0) throw new TargetError(notRestorable(target, snapshots, runs, gaps));
  sources.sort(
    (a, b) =>
      Number(upperRevision(a.snapshot) > target) - Number(upperRevision(b.snapshot) > target) ||
      b.snapshot.etcd.revision - a.snapshot.etcd.revision ||
      b.snapshot.createdAt.localeCompare(a.snapshot.createdAt),
  );
  return { target, sources };
}

// ---------------------------------------------------------------------------------------------
// Messages

function describeStart(span: RestorableSpan): string {
  return `revision ${span.from} (snapshot ${span.snapshot.id}, taken ${span.snapshot.createdAt})`;
}

function describeEnd(span: RestorableSpan): string {
  return span.run && span.to > span.from
    ? `revision ${span.to} (the newest event of that log run, received ${span.run.newestEventAt})`
    : describeStart(span);
}

function gapDetail(from: number, to: number, gaps: readonly DeltaGap[]): string {
  const g = gaps.find((x) => x.fromRevision <= to && (x.toRevision ?? Number.MAX_SAFE_INTEGER) >= from);
  return g ? ` (gap recorded ${g.detectedAt}: ${g.reason}, ${g.detail})` : '';
}

/** Why `target` cannot be restored, naming the nearest restorable revisions on either side. */
export function notRestorable(
  target: number,
  snapshots: readonly Manifest[],
  runs: readonly LogRun[],
  gaps: readonly DeltaGap[] = [],
): string {
  const spans = restorableSpans(snapshots, runs);
  if (spans.length === 0) {
    return `revision ${target} cannot be restored: there are no kept snapshots to start from; take one with "etcd-autobackup snapshot"`;
  }
  const below = spans.filter((s) => s.from <= target).sort((a, b) => b.to - a.to)[0];
  const above = spans.filter((s) => s.from > target).sort((a, b) => a.from - b.from)[0];
  const first = spans[0] as RestorableSpan;
  if (!below) {
    return `revision ${target} is before the oldest kept snapshot; the oldest restorable point is ${describeStart(first)}`;
  }
  if (!above) {
    const newest = spans.reduce((a, b) => (b.to > a.to ? b : a));
    return `revision ${target} is past what the log holds; the newest restorable point is ${describeEnd(newest)}`;
  }
  const hole = `${below.to + 1}..${above.from - 1}`;
  const inLog = runs.some((r) => r.startRevision <= target && r.endRevision >= target);
  const why = inLog
    ? `the log holds revision ${target}, but no kept snapshot lies at or below it on the same gap-free run to replay from`
    : `the log has a gap: revisions ${hole} are not in it${gapDetail(below.to + 1, above.from - 1, gaps)}`;
  return `revision ${target} cannot be restored: ${why}; the nearest restorable points are ${describeEnd(below)} and ${describeStart(above)}`;
}

// ---------------------------------------------------------------------------------------------
// --to-time

/** What `--to-time` needs next: an answer, or one segment to read the receive times of. */
export type TimeLookup =
  { kind: 'revision'; revision: number } | { kind: 'scan'; segment: DeltaManifest; floor: number };

/**
 * The state as of instant `at` is the newest revision whose events the writer received at or
 * before it (a snapshot counts at its createdAt). Segments are located by their manifests' first
 * and last receive times; only a segment that straddles `at` has to be read.
 */
export function lookupTime(at: number, snapshots: readonly Manifest[], runs: readonly LogRun[]): TimeLookup {
  let floor = 0;
  for (const s of snapshots) if (Date.parse(s.createdAt) <= at) floor = Math.max(floor, s.etcd.revision);
  const segments = runs.flatMap((r) => r.segments).sort((a, b) => a.firstRevision - b.firstRevision);
  const straddling = segments.filter((m) => Date.parse(m.firstEventAt) <= at).at(-1);
  if (straddling && Date.parse(straddling.lastEventAt) > at && straddling.lastRevision > floor) {
    return { kind: 'scan', segment: straddling, floor };
  }
  const fromLog = straddling ? straddling.lastRevision : 0;
  return { kind: 'revision', revision: Math.max(floor, fromLog) };
}

/** The newest revision in a scanned segment received at or before `at` (events in revision order). */
export function revisionAtTime(
  at: number,
  floor: number,
  events: Iterable<{ revision: number; receivedAt: number }>,
): number {
  let best = floor;
  for (const e of events) if (e.receivedAt <= at && e.revision > best) best = e.revision;
  return best;
}

/**
 * Checks that the state as of `at` is known: revision `revision` is the newest at or before `at`,
 * but when the log does not hold `revision + 1` (a gap or the end of the log follows) something
 * may have changed between it and `at` that the log never saw.
 */
export function checkTimeTarget(
  at: number,
  revision: number,
  snapshots: readonly Manifest[],
  runs: readonly LogRun[],
  gaps: readonly DeltaGap[] = [],
): number {
  const when = new Date(at).toISOString();
  const spans = restorableSpans(snapshots, runs);
  if (revision === 0 || spans.length === 0) {
    const oldest = spans[0];
    throw new TargetError(
      oldest
        ? `${when} is before the oldest kept snapshot; the oldest restorable point is ${describeStart(oldest)}`
        : `${when} cannot be restored: there are no kept snapshots to start from`,
    );
  }
  const continues = runs.some((r) => r.startRevision <= revision + 1 && r.endRevision >= revision + 1);
  if (!continues) {
    const later = spans.filter((s) => s.from > revision).sort((a, b) => a.from - b.from)[0];
    const here = spans.filter((s) => s.from <= revision && s.to >= revision)[0];
    const at0 = here
      ? `revision ${revision} (${here.run && here.to === revision ? `received ${here.run.newestEventAt}` : `snapshot ${here.snapshot.id}, taken ${here.snapshot.createdAt}`})`
      : `revision ${revision}`;
    throw new TargetError(
      later
        ? `${when} falls in a gap of the delta log: after ${at0} the log has no events until ${describeStart(later)}${gapDetail(revision + 1, later.from - 1, gaps)}, so the state at ${when} is unknown; the nearest restorable points are ${at0} and ${describeStart(later)}`
        : `${when} is after the newest event the log holds, ${at0}; the log cannot tell whether anything changed after it. Restore that state with --to-revision ${revision}`,
    );
  }
  return revision;
}

// ---------------------------------------------------------------------------------------------
// --before

/** One change of a key as the log holds it (what `history` prints). */
export interface KeyChange {
  revision: number;
  type: 'put' | 'delete';
  /** The key's version after the change: 1 for a create, 0 for a delete. */
  version: number;
  receivedAt: number;
  /** Bytes of the new value (0 for a delete). */
  size: number;
}

export function changeKind(c: Pick<KeyChange, 'type' | 'version'>): 'create' | 'update' | 'delete' {
  return c.type === 'delete' ? 'delete' : c.version === 1 ? 'create' : 'update';
}

/** `--before <resource>`: the revision just before the newest update or delete of the key in the log. */
export function beforeChangeTarget(key: string, changes: readonly KeyChange[]): number {
  const last = changes.filter((c) => changeKind(c) !== 'create').sort((a, b) => b.revision - a.revision)[0];
  if (!last) {
    const creates = changes.map((c) => c.revision);
    throw new TargetError(
      creates.length > 0
        ? `the log holds no update or delete of ${key}, only its creation at revision ${creates.join(', ')}; use --before-revision or --to-revision (see "etcd-autobackup history")`
        : `the log holds no change of ${key}; check the name with "etcd-autobackup history" (a key prefix starting with / lists what is there)`,
    );
  }
  return last.revision - 1;
}
