/**
 * Where a delta-log writer that just became leader starts: pure, decided from what the store
 * holds (segment manifests, gap records, full snapshots), tested by example.
 *
 * - The newest chain continues when it is whole (its segment names run without a hole from its
 *   start: only the newest manifest is read): the writer watches from its end + 1, so a
 *   writer that died mid-segment is resumed without a lost or duplicated revision. A chain whose
 *   oldest segments retention removed is whole from the snapshots it still reaches back to.
 * - A newest chain that does not start at its snapshot (a segment in the middle is missing) is a
 *   gap: never papered over, it needs a new full snapshot and a new chain after it.
 * - A gap recorded by an earlier writer whose snapshot is known (`toRevision`) starts the new
 *   chain after that snapshot; one whose snapshot never came waits for a snapshot again.
 * - Without any chain, the log starts after the newest full snapshot; without a snapshot, it
 *   waits for one (the writer enqueues it).
 */
import type { Manifest } from '../manifest.js';
import type { DeltaGap, DeltaManifest, SegmentRange } from './segment.js';

export type StartPoint =
  /** Watch from `next`, continuing `chain` (segments carry it as their manifest's `chain`). */
  | { kind: 'watch'; chain: DeltaManifest['chain']; next: number; why: string }
  /**
   * No usable position: a full snapshot taken at or after `notBefore` (ISO time) is needed and the
   * new chain starts after it. `gap` is the gap to record first (absent: none, or already recorded).
   */
  | { kind: 'snapshot'; notBefore: string; gap: Omit<DeltaGap, 'format' | 'cluster'> | undefined; why: string };

export interface StartInputs {
  /**
   * The segments the store holds, by name (catalog.ts, readDeltaLogEnd): a chain is checked for
   * holes by its names, so a new writer need not read every manifest.
   */
  segments: readonly SegmentRange[];
  /** The manifest of the newest segment (highest last revision): the chain it belongs to. */
  newest: DeltaManifest | undefined;
  /** Gap records (only the newest counts). */
  gaps: readonly DeltaGap[];
  /** Published full snapshots, any order. */
  snapshots: readonly Manifest[];
  /** ISO time of the decision (gap detection time). */
  now: string;
}

export function decideStart(inputs: StartInputs): StartPoint {
  const newest = inputs.newest;
  const newestGap = [...inputs.gaps].sort((a, b) => b.fromRevision - a.fromRevision)[0];
  const end = newest?.lastRevision ?? 0;

  // A gap found after everything the log holds: the previous writer's last word.
  if (newestGap && newestGap.fromRevision > end) {
    const base =
      newestGap.toRevision === undefined
        ? undefined
        : inputs.snapshots.find((s) => s.etcd.revision === newestGap.toRevision && s.createdAt >= newestGap.detectedAt);
    if (base) return afterSnapshot(base, `new chain after the snapshot taken for the gap at ${newestGap.fromRevision}`);
    return {
      kind: 'snapshot',
      notBefore: newestGap.detectedAt,
      gap: undefined,
      why: `the gap recorded at revision ${newestGap.fromRevision} (${newestGap.reason}) has no snapshot after it yet`,
    };
  }

  if (newest) {
    const { follows, startRevision } = newest.chain;
    const wholeFrom = contiguousFrom(inputs.segments, newest, startRevision);
    // Retention removes a chain's oldest segments once no kept snapshot needs them: what is left
    // is whole from any snapshot whose revision it reaches back to.
    const fromAKeptSnapshot = inputs.snapshots.some((s) => s.etcd.revision >= wholeFrom - 1 && s.etcd.revision <= end);
    if (wholeFrom === startRevision || fromAKeptSnapshot) {
      return {
        kind: 'watch',
        chain: { follows, startRevision },
        next: end + 1,
        why: `resuming the chain after ${follows} at revision ${end + 1}`,
      };
    }
    // The chain's earlier part ends before this piece starts: a segment between them is lost.
    const before = inputs.segments.filter((r) => r.lastRevision >= startRevision && r.lastRevision < wholeFrom);
    const from = Math.max(startRevision, ...before.map((r) => r.lastRevision + 1));
    return {
      kind: 'snapshot',
      notBefore: inputs.now,
      gap: {
        fromRevision: from,
        toRevision: wholeFrom - 1,
        reason: 'segment-missing',
        detail: `the chain after ${follows} has no segment for revisions ${from}..${wholeFrom - 1}`,
        detectedAt: inputs.now,
      },
      why: `a segment of the chain after ${follows} is missing (revisions ${from}..${wholeFrom - 1})`,
    };
  }

  const snapshot = newestSnapshot(inputs.snapshots);
  if (snapshot) return afterSnapshot(snapshot, `no log yet: starting after the newest snapshot ${snapshot.id}`);
  return { kind: 'snapshot', notBefore: inputs.now, gap: undefined, why: 'no full snapshot to start the log from' };
}

/**
 * The first revision from which the names run without a hole up to `newest`: walking back from
 * it, each step to a segment ending right before, the longest when re-sends overlap, never past
 * the chain's own start (what lies before belongs to older chains).
 */
function contiguousFrom(segments: readonly SegmentRange[], newest: SegmentRange, chainStart: number): number {
  const longestEndingAt = new Map<number, number>();
  for (const r of segments) {
    const first = longestEndingAt.get(r.lastRevision);
    if (first === undefined || r.firstRevision < first) longestEndingAt.set(r.lastRevision, r.firstRevision);
  }
  let from = newest.firstRevision;
  while (from > chainStart) {
    const before = longestEndingAt.get(from - 1);
    if (before === undefined) break;
    from = Math.max(before, chainStart);
  }
  return from;
}

/** A chain starts right after its snapshot's revision (the db may hold a little more; replay skips it). */
export function afterSnapshot(snapshot: Manifest, why: string): StartPoint {
  const startRevision = snapshot.etcd.revision + 1;
  return { kind: 'watch', chain: { follows: snapshot.id, startRevision }, next: startRevision, why };
}

export function newestSnapshot(snapshots: readonly Manifest[]): Manifest | undefined {
  let best: Manifest | undefined;
  for (const s of snapshots) {
    if (
      !best ||
      s.etcd.revision > best.etcd.revision ||
      (s.etcd.revision === best.etcd.revision && s.createdAt > best.createdAt)
    )
      best = s;
  }
  return best;
}
