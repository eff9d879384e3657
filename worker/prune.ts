/**
 * Retention, carried out: planPrune lists the cluster's snapshots and delta log and decides with
 * retention.ts (deleting nothing: the dry run's answer); applyPrunePlan deletes what it planned.
 *
 * Safety rules, in the order they apply:
 * - Everything is read before anything is deleted. A listing that fails, a manifest read that
 *   fails (other than "gone meanwhile"), or a listing without the snapshot just published stops
 *   the run with nothing deleted.
 * - Only names this service writes, directly under `<cluster>/snapshots/`, are candidates;
 *   anything else is counted as foreign and never touched.
 * - A manifest that cannot be parsed, or that describes another cluster or id, is left alone with
 *   its object: we cannot tell what it guards.
 * - The newest snapshot whose last drill passed (`<id>.drill.json`) is kept whatever the counts say.
 * - The newest verified snapshot is kept whatever the counts say (retention.ts, and checked again
 *   here before deleting).
 * - A snapshot goes manifest first, then object: readers (list, verify, restore) trust manifests,
 *   so none may ever point at a deleted object. If the object's delete then fails, the object is
 *   an orphan without a manifest, which the next run removes.
 * - Orphans (an object without a manifest, a manifest without its object, a file store's stale
 *   upload temp file) are deleted only when older than max(retention.orphanAge, snapshot.timeout).
 * - Delta-log segments (docs/delta-log.md) go only when no kept snapshot needs them: a segment
 *   ending at or before the oldest kept snapshot's revision. Nothing goes while no snapshot is kept.
 *   Manifest first, then object, as for snapshots; their orphans follow the same age rule.
 */
import type { Config } from '../core/config/index.js';
import type { RetentionConfig } from '../core/config/schema.js';
import { messageOf } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { snapshotsPrefix, type Manifest } from './manifest.js';
import { ManifestReadError, readManifest } from './manifest-read.js';
import { readDeltaCatalog, type DeltaCatalog } from './delta/catalog.js';
import { deltasPrefix, gapKey, parseSegmentKey, segmentManifestKey } from './delta/segment.js';
import {
  isStale,
  orphanSafeAge,
  parseOwnName,
  planDeltaRetention,
  planRetention,
  type Candidate,
} from './retention.js';
import { NotFoundError, type ObjectInfo, type Store } from './stores/store.js';
import { mapLimit } from './map-limit.js';
import { readDrillRecord } from './drill.js';

export interface PruneOptions {
  store: Store;
  cluster: string;
  retention: RetentionConfig;
  /** snapshot.timeout: no orphan younger than this is touched (an upload may still be running). */
  snapshotTimeoutMs: number;
  log: Logger;
  /** Decide and report, delete nothing. */
  dryRun?: boolean;
  /** Clock, for tests. */
  now?: () => Date;
  /** Id of the snapshot just published; a listing without it is stale and nothing is deleted. */
  mustInclude?: string;
  /** Manifests read at once. */
  concurrency?: number;
}

/** The prune options that come from the config. */
export function pruneSettings(
  config: Pick<Config, 'cluster' | 'retention' | 'snapshot'>,
): Pick<PruneOptions, 'cluster' | 'retention' | 'snapshotTimeoutMs'> {
  return { cluster: config.cluster, retention: config.retention, snapshotTimeoutMs: config.snapshot.timeout };
}

export interface KeptSnapshot {
  id: string;
  createdAt: string;
  reasons: string[];
}

export interface DeletedSnapshot {
  id: string;
  createdAt: string;
  /** Manifest key first: the order they are (or would be) deleted in. */
  keys: string[];
  reason: string;
}

export interface PathNote {
  key: string;
  reason: string;
}

export interface PruneReport {
  cluster: string;
  location: string;
  /** retention.enabled; when false nothing was considered or deleted. */
  enabled: boolean;
  dryRun: boolean;
  /** Newest first. */
  kept: KeptSnapshot[];
  /** Deleted, or in a dry run to be deleted; newest first. */
  deleted: DeletedSnapshot[];
  /** Orphans deleted (or to be deleted in a dry run). */
  orphans: PathNote[];
  /** Names of ours left in place on purpose: unreadable manifests, orphans too young to judge. */
  skipped: PathNote[];
  /** Objects under the prefix that this service did not write; never touched. */
  foreign: number;
  /** Delta-log segments kept (a kept snapshot may need them). */
  deltaSegmentsKept: number;
  /** Delta-log segments deleted (or to be deleted in a dry run): no kept snapshot needs them. */
  deltaSegmentsDeleted: DeletedSegment[];
}

export interface DeletedSegment {
  firstRevision: number;
  lastRevision: number;
  /** Manifest key first: the order they are (or would be) deleted in. */
  keys: string[];
  reason: string;
}

/** What one run will delete, in order, with the report of what stays; planPrune makes it. */
export interface PrunePlan {
  /** Kept snapshots, skipped and foreign names; `deleted`/`orphans` are filled as the plan is carried out. */
  report: PruneReport;
  snapshots: DeletedSnapshot[];
  segments: DeletedSegment[];
  /** Gap records no replay can meet any more. */
  gaps: PathNote[];
  orphans: Orphan[];
}

/** Stopped before or while deleting; says what was already done. */
export class PruneError extends Error {
  override readonly name = 'PruneError';
}

interface Group {
  objects: ObjectInfo[];
  manifest?: ObjectInfo;
  /** `<id>.drill.json`: read for retention, deleted with its snapshot. */
  drill?: ObjectInfo;
}

type Found = Candidate & { manifest: Manifest; keys: string[] };

/**
 * Everything retention would do, decided from one reading of the store, nothing deleted: the
 * snapshots and delta-log segments to delete, the orphans, and the report of what stays and why.
 */
export async function planPrune(options: PruneOptions): Promise<PrunePlan> {
  const { store, cluster, retention } = options;
  const now = (options.now ?? (() => new Date()))();
  const dryRun = options.dryRun ?? false;
  const report: PruneReport = {
    cluster,
    location: store.location,
    enabled: retention.enabled,
    dryRun,
    kept: [],
    deleted: [],
    orphans: [],
    skipped: [],
    foreign: 0,
    deltaSegmentsKept: 0,
    deltaSegmentsDeleted: [],
  };
  if (!retention.enabled) return { report, snapshots: [], segments: [], gaps: [], orphans: [] };
  const prefix = snapshotsPrefix(cluster);
  const safeAge = orphanSafeAge(retention.orphanAge, options.snapshotTimeoutMs);

  let listed: ObjectInfo[];
  try {
    listed = await store.list(prefix);
  } catch (err) {
    throw new PruneError(`listing ${prefix} in ${store.location} failed, so nothing was deleted: ${messageOf(err)}`, {
      cause: err,
    });
  }

  const present = new Set(listed.map((o) => o.key));
  const groups = new Map<string, Group>();
  for (const o of listed) {
    if (!o.key.startsWith(prefix)) {
      throw new PruneError(
        `the listing of ${prefix} in ${store.location} returned "${o.key}", outside the prefix; nothing was deleted`,
      );
    }
    const own = parseOwnName(o.key.slice(prefix.length));
    if (!own) {
      report.foreign++;
      continue;
    }
    const group = groups.get(own.id) ?? { objects: [] };
    if (own.kind === 'manifest') group.manifest = o;
    else if (own.kind === 'drill') group.drill = o;
    else group.objects.push(o);
    groups.set(own.id, group);
  }

  const reads = await mapLimit(
    [...groups].filter(([, g]) => g.manifest),
    options.concurrency ?? 8,
    async ([id, g]) => {
      const key = (g.manifest as ObjectInfo).key;
      try {
        return { id, key, manifest: await readManifest(store, key) };
      } catch (err) {
        if (err instanceof NotFoundError) return { id, key, gone: true };
        if (err instanceof ManifestReadError) {
          throw new PruneError(
            `reading manifest ${key} from ${store.location} failed, so nothing was deleted: ${messageOf(err.cause)}`,
            { cause: err },
          );
        }
        return { id, key, problem: messageOf(err) };
      }
    },
  );

  const found: Found[] = [];
  const orphans: Orphan[] = [];
  const noteOrphan = (o: ObjectInfo, why: string) => {
    if (isStale(o.modified, now, safeAge))
      orphans.push({ key: o.key, reason: why, ...(o.modified ? { modified: o.modified } : {}) });
    else
      report.skipped.push({
        key: o.key,
        reason: `${why}, but not older than ${hours(safeAge)}: it may still be being written`,
      });
  };
  const readById = new Map(reads.map((r) => [r.id, r]));
  for (const [id, g] of groups) {
    const r = readById.get(id);
    if (r?.gone) continue; // Deleted by someone else since the listing; the next run sees the rest.
    if (r?.problem !== undefined || (r?.manifest && (r.manifest.cluster !== cluster || r.manifest.id !== id))) {
      const why = r.problem ?? `it describes ${r.manifest?.cluster}/${r.manifest?.id}, not ${cluster}/${id}`;
      report.skipped.push({
        key: r.key,
        reason: `unusable manifest (${why}); left with its object, never deleted blindly`,
      });
      for (const o of g.objects) report.skipped.push({ key: o.key, reason: `its manifest ${r.key} is unusable` });
      continue;
    }
    const manifest = r?.manifest;
    const target = manifest ? g.objects.find((o) => o.key === manifest.key) : undefined;
    for (const o of g.objects) if (o !== target) noteOrphan(o, 'snapshot object without a manifest');
    if (g.drill && !g.manifest) noteOrphan(g.drill, 'drill record without a manifest');
    if (!manifest || !g.manifest) continue;
    if (!target) {
      // An object that exists under a name we do not write (or elsewhere) is not ours to judge.
      if (present.has(manifest.key))
        report.skipped.push({
          key: g.manifest.key,
          reason: `its object ${manifest.key} is not named as this service names snapshots; left alone`,
        });
      else noteOrphan(g.manifest, `manifest whose object ${manifest.key} is missing`);
      continue;
    }
    found.push({
      id,
      createdAt: new Date(manifest.createdAt),
      revision: manifest.etcd.revision,
      verified: manifest.transforms.includes('verify-sha256'),
      drilled: g.drill ? (await readDrillRecord(store, cluster, id))?.ok === true : false,
      manifest,
      // The drill record last: it says nothing once the snapshot is gone.
      keys: [g.manifest.key, target.key, ...(g.drill ? [g.drill.key] : [])],
    });
  }

  if (options.mustInclude !== undefined && !found.some((f) => f.id === options.mustInclude)) {
    throw new PruneError(
      `the listing of ${store.location} lacks snapshot ${options.mustInclude}, which was just published; the listing looks stale or incomplete, so nothing was deleted`,
    );
  }

  const plan = planRetention(found, retention);
  const newestVerified = plan.keep.find((d) => d.reasons.includes('newest verified'));
  if (newestVerified && plan.remove.some((d) => d.snapshot.id === newestVerified.snapshot.id)) {
    throw new PruneError(
      'retention planned to delete the newest verified snapshot; nothing was deleted (this is a bug)',
    );
  }
  const rules = `last ${retention.keepLast}, hourly ${retention.hourly}, daily ${retention.daily}, weekly ${retention.weekly}, monthly ${retention.monthly}`;
  report.kept = plan.keep.map((d) => ({
    id: d.snapshot.id,
    createdAt: d.snapshot.manifest.createdAt,
    reasons: d.reasons,
  }));
  const doomed = plan.remove.map((d) => ({
    id: d.snapshot.id,
    createdAt: d.snapshot.manifest.createdAt,
    keys: d.snapshot.keys,
    reason: `kept by no retention rule (${rules})`,
  }));
  orphans.push(
    ...(await incompleteUploads(store, prefix, now, safeAge, report, (name) => parseOwnName(name) !== undefined)),
  );
  // Read before anything is deleted, like the snapshots: a failed read deletes nothing at all.
  const deltas = await planDeltas(
    store,
    cluster,
    plan.keep.map((d) => d.snapshot.revision),
    noteOrphan,
    report,
  );
  orphans.push(
    ...(await incompleteUploads(
      store,
      deltasPrefix(cluster),
      now,
      safeAge,
      report,
      (name) => parseSegmentKey(name) !== undefined,
    )),
  );
  report.deltaSegmentsKept = deltas.kept;
  return { report, snapshots: doomed, segments: deltas.segments, gaps: deltas.gaps, orphans };
}

/** What a plan says to delete: the dry run's answer. */
export function plannedReport(plan: PrunePlan): PruneReport {
  return {
    ...plan.report,
    deleted: plan.snapshots,
    deltaSegmentsDeleted: plan.segments,
    orphans: [...plan.gaps, ...plan.orphans].map(({ key, reason }) => ({ key, reason })),
  };
}

/**
 * Carries out a plan: each snapshot manifest first, then its object; then delta-log segments
 * (manifest first, then object), gap records no replay can meet, and orphans. A failed delete
 * stops the run, saying what was already done; the next run goes on from there.
 */
export async function applyPrunePlan(store: Store, plan: PrunePlan, log: Logger): Promise<PruneReport> {
  const report: PruneReport = { ...plan.report, deleted: [], deltaSegmentsDeleted: [], orphans: [] };
  const cluster = report.cluster;
  for (const d of plan.snapshots) {
    for (const key of d.keys) await remove(store, key, report);
    report.deleted.push(d);
    log.info({ cluster, id: d.id, createdAt: d.createdAt, keys: d.keys }, `deleted snapshot ${d.id}: ${d.reason}`);
  }
  for (const segment of plan.segments) {
    for (const key of segment.keys) await remove(store, key, report);
    report.deltaSegmentsDeleted.push(segment);
    log.debug({ cluster, keys: segment.keys }, `deleted delta segment: ${segment.reason}`);
  }
  if (plan.segments.length > 0)
    log.info({ cluster, segments: plan.segments.length }, 'deleted delta-log segments no kept snapshot needs');
  for (const o of [...plan.gaps, ...plan.orphans]) {
    await remove(store, o.key, report);
    report.orphans.push({ key: o.key, reason: o.reason });
    log.info({ cluster, key: o.key }, `deleted ${o.key}: ${o.reason}`);
  }
  return report;
}

export async function prune(options: PruneOptions): Promise<PruneReport> {
  const plan = await planPrune(options);
  if (options.dryRun ?? false) return plannedReport(plan);
  return applyPrunePlan(options.store, plan, options.log);
}

/** Deletes one key; on failure says what this run had already deleted. */
async function remove(store: Store, key: string, report: PruneReport): Promise<void> {
  try {
    await store.delete(key);
  } catch (err) {
    throw new PruneError(
      `deleting ${key} from ${store.location} failed: ${messageOf(err)}; ` +
        `this run deleted ${report.deleted.length} snapshot(s) and ${report.orphans.length} orphan(s) before; the next run goes on`,
      { cause: err },
    );
  }
}

/** An orphan to delete. */
type Orphan = PathNote & { modified?: Date };
/** FileStore's marker between the final name and the random part of an upload's temp file. */
const TEMP_MARK = '.partial-';

/**
 * Leftovers of interrupted writes that list() hides (the file store's temp files): stale ones of
 * our naming directly under `prefix` (and only there) are orphans.
 */
async function incompleteUploads(
  store: Store,
  prefix: string,
  now: Date,
  safeAge: number,
  report: PruneReport,
  ours: (name: string) => boolean,
): Promise<Orphan[]> {
  if (!store.listIncomplete) return [];
  let listed: ObjectInfo[];
  try {
    listed = await store.listIncomplete(prefix);
  } catch (err) {
    throw new PruneError(
      `listing interrupted uploads under ${prefix} failed, so nothing was deleted: ${messageOf(err)}`,
      {
        cause: err,
      },
    );
  }
  const out: Orphan[] = [];
  for (const o of listed) {
    const name = o.key.slice(prefix.length);
    const mark = name.lastIndexOf(TEMP_MARK);
    if (!o.key.startsWith(prefix) || name.includes('/') || mark < 0) continue;
    if (!ours(name.slice(0, mark)) || !/^[0-9a-f]+$/.test(name.slice(mark + TEMP_MARK.length))) continue;
    if (isStale(o.modified, now, safeAge))
      out.push({
        key: o.key,
        reason: 'upload temp file left by an interrupted write',
        ...(o.modified ? { modified: o.modified } : {}),
      });
    else report.skipped.push({ key: o.key, reason: 'upload temp file of a write that may still be running' });
  }
  return out;
}

/**
 * The delta log's share of a run: segments no kept snapshot needs (retention.ts), gap records
 * no replay can meet, orphans (a segment object without a manifest, a manifest whose object is
 * gone). Unusable manifests are left with their objects, as for snapshots.
 */
async function planDeltas(
  store: Store,
  cluster: string,
  keptRevisions: readonly number[],
  noteOrphan: (o: ObjectInfo, why: string) => void,
  report: PruneReport,
): Promise<{ segments: DeletedSegment[]; gaps: PathNote[]; kept: number }> {
  let catalog: DeltaCatalog;
  try {
    catalog = await readDeltaCatalog(store, cluster);
  } catch (err) {
    throw new PruneError(
      `reading the delta log in ${store.location} failed, so nothing was deleted: ${messageOf(err)}`,
      {
        cause: err,
      },
    );
  }
  const plan = planDeltaRetention(catalog.manifests, catalog.gaps, keptRevisions);
  const oldest = plan.oldestKeptRevision;
  const segments = plan.remove.map((m) => ({
    firstRevision: m.firstRevision,
    lastRevision: m.lastRevision,
    keys: [segmentManifestKey(cluster, m.firstRevision, m.lastRevision), m.key],
    reason: `ends at revision ${m.lastRevision}, at or before the oldest kept snapshot's revision ${oldest}`,
  }));
  const gaps = plan.removeGaps.map((g) => ({
    key: gapKey(cluster, g.fromRevision),
    reason: `gap record before the oldest kept snapshot's revision ${oldest}`,
  }));

  const referenced = new Set(
    catalog.manifests.flatMap((m) => [m.key, segmentManifestKey(cluster, m.firstRevision, m.lastRevision)]),
  );
  const invalid = new Map(catalog.invalid.map((i) => [i.key, i.problem]));
  const objectMissing = (problem: string | undefined) =>
    problem !== undefined && /segment object .* is missing/.test(problem);
  const prefix = deltasPrefix(cluster);
  for (const o of catalog.objects) {
    const name = o.key.slice(prefix.length);
    if (name.startsWith('gaps/')) {
      const problem = invalid.get(o.key);
      if (problem !== undefined)
        report.skipped.push({ key: o.key, reason: `unusable gap record (${problem}); left alone` });
      continue;
    }
    const named = name.includes('/') ? undefined : parseSegmentKey(name);
    if (!named) {
      report.foreign++;
      continue;
    }
    if (referenced.has(o.key)) continue;
    if (named.kind === 'manifest') {
      const problem = invalid.get(o.key);
      if (objectMissing(problem)) noteOrphan(o, 'delta manifest whose segment object is missing');
      else if (problem !== undefined)
        report.skipped.push({
          key: o.key,
          reason: `unusable delta manifest (${problem}); left with its object, never deleted blindly`,
        });
      continue;
    }
    const manifestKey = segmentManifestKey(cluster, named.firstRevision, named.lastRevision);
    const problem = invalid.get(manifestKey);
    if (problem !== undefined && !objectMissing(problem))
      report.skipped.push({ key: o.key, reason: `its manifest ${manifestKey} is unusable` });
    else noteOrphan(o, 'delta segment object without a manifest');
  }
  return { segments, gaps, kept: plan.keep.length };
}

function hours(ms: number): string {
  return ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : `${Math.round(ms / 60_000)}m`;
}

export type PruneMetrics = Pick<Metrics, 'pruneRuns' | 'pruned'>;

/**
 * The worker's after-snapshot hook: prune, log, count. It never throws: a snapshot that was
 * taken and published stays a success whatever retention does afterwards.
 */
export function pruneAfterSnapshot(options: {
  config: Pick<Config, 'cluster' | 'retention' | 'snapshot'>;
  store: Store;
  metrics?: PruneMetrics;
}): (manifest: Manifest, log: Logger) => Promise<void> {
  const { config, store, metrics } = options;
  return async (manifest, log) => {
    try {
      const report = await prune({ ...pruneSettings(config), store, log, mustInclude: manifest.id });
      metrics?.pruneRuns.inc({ cluster: config.cluster, result: 'success' });
      metrics?.pruned.inc({ cluster: config.cluster, kind: 'snapshot' }, report.deleted.length);
      metrics?.pruned.inc({ cluster: config.cluster, kind: 'orphan' }, report.orphans.length);
      log.info(
        {
          kept: report.kept.length,
          deleted: report.deleted.length,
          orphans: report.orphans.length,
          skipped: report.skipped.length,
        },
        'retention done',
      );
    } catch (err) {
      metrics?.pruneRuns.inc({ cluster: config.cluster, result: 'failure' });
      log.error(
        { err: messageOf(err) },
        `retention after snapshot ${manifest.id} failed (the snapshot itself succeeded): ${messageOf(err)}`,
      );
    }
  };
}
