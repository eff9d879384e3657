/**
 * What `list` shows of the delta log beside the snapshots: each chain's revisions, the newest
 * event, from which revision it can be restored, and every gap, so an operator sees at once what
 * a point-in-time restore can reach (docs/point-in-time-restore.md).
 */
import type { Logger } from 'pino';
import { messageOf } from '../../core/errors.js';
import { readDeltaCatalog } from '../../worker/delta/catalog.js';
import { buildChains, type ChainProblem, type DeltaGap } from '../../worker/delta/segment.js';
import { logRuns, restorableSpans } from '../../worker/delta/target.js';
import type { Manifest } from '../../worker/manifest.js';
import type { Store } from '../../worker/stores/store.js';
import { formatTable } from '../table.js';

/** The delta log's coverage as `list --json --include-deltas` prints it (docs/point-in-time-restore.md). */
export interface DeltaCoverage {
  chains: {
    /** Id of the full snapshot the chain follows. */
    follows: string;
    startRevision: number;
    endRevision: number;
    newestEventAt: string;
    segments: number;
    /** The revisions a point-in-time restore can reach with this chain, null when none. */
    restorable: { fromRevision: number; toRevision: number } | null;
  }[];
  gaps: DeltaGap[];
  /** Breaks inside a chain (a segment missing or overlapping). */
  problems: ChainProblem[];
}

/** The coverage, or the reason the log cannot be read. */
export async function readDeltaCoverage(
  store: Store,
  cluster: string,
  snapshots: readonly Manifest[],
  log: Logger,
): Promise<DeltaCoverage | { error: string }> {
  let catalog;
  try {
    catalog = await readDeltaCatalog(store, cluster, {
      onInvalid: (key, problem) => log.warn({ key }, `skipping ${key}: ${problem}`),
    });
  } catch (err) {
    return { error: messageOf(err) };
  }
  const { chains, problems } = buildChains(catalog.manifests);
  const spans = restorableSpans(snapshots, logRuns(chains));
  return {
    chains: chains.map((c) => {
      const span = spans.find((s) => s.run && s.from <= c.endRevision && s.to >= c.startRevision);
      return {
        follows: c.follows,
        startRevision: c.startRevision,
        endRevision: c.endRevision,
        newestEventAt: c.newestEventAt,
        segments: c.segments.length,
        restorable: span ? { fromRevision: Math.max(span.from, c.startRevision - 1), toRevision: c.endRevision } : null,
      };
    }),
    gaps: catalog.gaps,
    problems,
  };
}

/** The delta log section of `list`, or undefined when the cluster has no delta log. */
export function describeDeltaLog(coverage: DeltaCoverage | { error: string }): string | undefined {
  if ('error' in coverage) return `delta log: cannot be read: ${coverage.error}`;
  if (coverage.chains.length === 0 && coverage.gaps.length === 0) return undefined;
  const rows = [
    ['DELTA CHAIN FOLLOWS', 'FROM', 'TO', 'NEWEST EVENT', 'SEGMENTS', 'RESTORABLE'],
    ...coverage.chains.map((c) => [
      c.follows,
      String(c.startRevision),
      String(c.endRevision),
      c.newestEventAt.replace(/\.\d+Z$/, 'Z'),
      String(c.segments),
      c.restorable
        ? `${c.restorable.fromRevision}..${c.restorable.toRevision}`
        : 'no (no kept snapshot at or below its start)',
    ]),
  ];
  const lines = [formatTable(rows)];
  for (const g of coverage.gaps) {
    lines.push(
      `gap: revisions ${g.fromRevision}..${g.toRevision ?? '?'} are not in the log (${g.reason}, found ${g.detectedAt}: ${g.detail})`,
    );
  }
  for (const p of coverage.problems) {
    lines.push(
      `${p.kind}: the chain after ${p.follows} expected revision ${p.expected} next, the next segment starts at ${p.found}`,
    );
  }
  return lines.join('\n');
}
