/**
 * What `list` shows of the delta log beside the snapshots: each chain's revisions, the newest
 * event, from which revision it can be restored, and every gap, so an operator sees at once what
 * a point-in-time restore can reach (docs/point-in-time-restore.md).
 */
import type { Logger } from 'pino';
import { messageOf } from '../../core/errors.js';
import { readDeltaCatalog } from '../../worker/delta/catalog.js';
import { buildChains } from '../../worker/delta/segment.js';
import { logRuns, restorableSpans } from '../../worker/delta/target.js';
import type { Manifest } from '../../worker/manifest.js';
import type { Store } from '../../worker/stores/store.js';
import { formatTable } from '../table.js';

/** The delta log section of `list`, or undefined when the cluster has no delta log. */
export async function describeDeltaLog(
  store: Store,
  cluster: string,
  snapshots: readonly Manifest[],
  log: Logger,
): Promise<string | undefined> {
  let catalog;
  try {
    catalog = await readDeltaCatalog(store, cluster, {
      onInvalid: (key, problem) => log.warn({ key }, `skipping ${key}: ${problem}`),
    });
  } catch (err) {
    return `delta log: cannot be read: ${messageOf(err)}`;
  }
  if (catalog.manifests.length === 0 && catalog.gaps.length === 0) return undefined;
  const { chains, problems } = buildChains(catalog.manifests);
  const spans = restorableSpans(snapshots, logRuns(chains));
  const rows = [
    ['DELTA CHAIN FOLLOWS', 'FROM', 'TO', 'NEWEST EVENT', 'SEGMENTS', 'RESTORABLE'],
    ...chains.map((c) => {
      const span = spans.find((s) => s.run && s.from <= c.endRevision && s.to >= c.startRevision);
      return [
        c.follows,
        String(c.startRevision),
        String(c.endRevision),
        c.newestEventAt.replace(/\.\d+Z$/, 'Z'),
        String(c.segments.length),
        span
          ? `${Math.max(span.from, c.startRevision - 1)}..${c.endRevision}`
          : 'no (no kept snapshot at or below its start)',
      ];
    }),
  ];
  const lines = [formatTable(rows)];
  for (const g of catalog.gaps) {
    lines.push(
      `gap: revisions ${g.fromRevision}..${g.toRevision ?? '?'} are not in the log (${g.reason}, found ${g.detectedAt}: ${g.detail})`,
    );
  }
  for (const p of problems) {
    lines.push(
      `${p.kind}: the chain after ${p.follows} expected revision ${p.expected} next, the next segment starts at ${p.found}`,
    );
  }
  return lines.join('\n');
}
