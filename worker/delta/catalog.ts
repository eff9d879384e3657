/**
 * What the store holds of a cluster's delta log: the segments (by their manifests, never by object
 * names alone), the gap records, and every object under `deltas/` (for the orphan sweep).
 *
 * One listing, read whole. A listing that fails, or a manifest that the store fails to return
 * (other than "deleted meanwhile"), rejects the whole read: the writer would otherwise take a
 * missing manifest for a lost segment, and retention would take its object for an orphan.
 */
import { messageOf } from '../../core/errors.js';
import { readStoredText } from '../manifest-read.js';
import { mapLimit } from '../map-limit.js';
import { NotFoundError, type ObjectInfo, type Store } from '../stores/store.js';
import {
  deltaGapSchema,
  deltasPrefix,
  parseDeltaManifest,
  parseSegmentKey,
  segmentManifestKey,
  DELTA_MANIFEST_SUFFIX,
  type DeltaGap,
  type DeltaManifest,
  type SegmentRange,
} from './segment.js';

export interface DeltaCatalogOptions {
  /**
   * Manifests read at once.
   * @defaultValue 16
   */
  concurrency?: number;
  /**
   * Called for each manifest or gap record that cannot be used (invalid, another cluster's, its object gone).
   * @defaultValue ignored (they are still returned in `invalid`)
   */
  onInvalid?: (key: string, problem: string) => void;
}

export interface DeltaCatalog {
  /** Valid segment manifests whose object is present, by first revision (then longest first). */
  manifests: DeltaManifest[];
  /** Gap records, by first missing revision. */
  gaps: DeltaGap[];
  /** Every object under `<cluster>/deltas/`, gap records and unknown names included. */
  objects: ObjectInfo[];
  /** Manifests and gap records that were there but unusable, with why. */
  invalid: { key: string; problem: string }[];
}

const GAPS_INFIX = 'gaps/';

export async function readDeltaCatalog(
  store: Store,
  cluster: string,
  options: DeltaCatalogOptions = {},
): Promise<DeltaCatalog> {
  const prefix = deltasPrefix(cluster);
  const objects = await store.list(prefix);
  const present = new Set(objects.map((o) => o.key));
  const manifestKeys: string[] = [];
  const gapKeys: string[] = [];
  for (const o of objects) {
    const rest = o.key.slice(prefix.length);
    if (rest.startsWith(GAPS_INFIX)) {
      if (rest.endsWith('.json')) gapKeys.push(o.key);
    } else if (!rest.includes('/') && rest.endsWith(DELTA_MANIFEST_SUFFIX)) {
      manifestKeys.push(o.key);
    }
  }
  const invalid: DeltaCatalog['invalid'] = [];
  const reject = (key: string, problem: string): void => {
    invalid.push({ key, problem });
    options.onInvalid?.(key, problem);
  };
  const concurrency = options.concurrency ?? 16;

  const texts = await mapLimit([...manifestKeys, ...gapKeys], concurrency, async (key) => ({
    key,
    text: await readText(store, key),
  }));

  const manifests: DeltaManifest[] = [];
  const gaps: DeltaGap[] = [];
  for (const { key, text } of texts) {
    if (text === undefined) continue;
    if (key.slice(prefix.length).startsWith(GAPS_INFIX)) {
      const gap = parseGap(text, key, cluster);
      if (typeof gap === 'string') reject(key, gap);
      else gaps.push(gap);
      continue;
    }
    const m = usableManifest(text, key, cluster, prefix, present);
    if (typeof m === 'string') reject(key, m);
    else manifests.push(m);
  }
  manifests.sort((a, b) => a.firstRevision - b.firstRevision || b.lastRevision - a.lastRevision);
  gaps.sort((a, b) => a.fromRevision - b.fromRevision);
  return { manifests, gaps, objects, invalid };
}

/** Every usable segment manifest of `cluster`, by first revision. */
export async function listDeltaManifests(
  store: Store,
  cluster: string,
  options: DeltaCatalogOptions = {},
): Promise<DeltaManifest[]> {
  return (await readDeltaCatalog(store, cluster, options)).manifests;
}

/** Every gap record of `cluster`, by first missing revision. */
export async function listDeltaGaps(
  store: Store,
  cluster: string,
  options: DeltaCatalogOptions = {},
): Promise<DeltaGap[]> {
  return (await readDeltaCatalog(store, cluster, options)).gaps;
}

/** What a writer needs to know where the log ends (start-point.ts): read by name, not whole. */
export interface DeltaLogEnd {
  /** Every segment whose object and manifest are both listed, by name (never read). */
  segments: SegmentRange[];
  /** The newest usable segment's manifest (highest last revision): the chain a writer continues. */
  newest: DeltaManifest | undefined;
  /** The newest usable gap record (highest first missing revision), if any. */
  gaps: DeltaGap[];
}

/**
 * The end of the log from one listing and the fewest reads: segment names carry their revision
 * ranges, so only the newest manifest and the newest gap record are read (and older ones only
 * while the newer are unusable: those are left out, as readDeltaCatalog leaves them out). The
 * segments between are taken by name: a writer resuming a chain needs where it ends and whether
 * its names run without a hole back to its start, not what every manifest says.
 */
export async function readDeltaLogEnd(
  store: Store,
  cluster: string,
  options: Pick<DeltaCatalogOptions, 'onInvalid'> = {},
): Promise<DeltaLogEnd> {
  const prefix = deltasPrefix(cluster);
  const objects = await store.list(prefix);
  const objectRanges = new Set<string>();
  const manifestRanges: SegmentRange[] = [];
  const gapKeys: string[] = [];
  for (const o of objects) {
    const rest = o.key.slice(prefix.length);
    if (rest.startsWith(GAPS_INFIX)) {
      if (rest.endsWith('.json')) gapKeys.push(o.key);
      continue;
    }
    if (rest.includes('/')) continue;
    const named = parseSegmentKey(o.key);
    if (!named) continue;
    if (named.kind === 'object') objectRanges.add(`${named.firstRevision}-${named.lastRevision}`);
    else manifestRanges.push({ firstRevision: named.firstRevision, lastRevision: named.lastRevision });
  }
  const present = new Set(objects.map((o) => o.key));
  let segments = manifestRanges.filter((r) => objectRanges.has(`${r.firstRevision}-${r.lastRevision}`));
  // Newest first: the highest last revision, then the longest.
  segments.sort((a, b) => b.lastRevision - a.lastRevision || a.firstRevision - b.firstRevision);
  const reject = (key: string, problem: string): void => options.onInvalid?.(key, problem);

  let newest: DeltaManifest | undefined;
  for (const r of [...segments]) {
    const key = segmentManifestKey(cluster, r.firstRevision, r.lastRevision);
    const text = await readText(store, key);
    const m = text === undefined ? undefined : usableManifest(text, key, cluster, prefix, present);
    if (typeof m === 'string') reject(key, m);
    else if (m) {
      newest = m;
      break;
    }
    segments = segments.filter((s) => s !== r);
  }

  gapKeys.sort().reverse(); // names carry the zero-padded first missing revision
  const gaps: DeltaGap[] = [];
  for (const key of gapKeys) {
    const text = await readText(store, key);
    if (text === undefined) continue;
    const gap = parseGap(text, key, cluster);
    if (typeof gap === 'string') reject(key, gap);
    else {
      gaps.push(gap);
      break;
    }
  }
  segments.sort((a, b) => a.firstRevision - b.firstRevision || b.lastRevision - a.lastRevision);
  return { segments, newest, gaps };
}

/** A segment manifest that parses and fits the listing, or what is wrong with it. */
function usableManifest(
  text: string,
  key: string,
  cluster: string,
  prefix: string,
  present: ReadonlySet<string>,
): DeltaManifest | string {
  let m: DeltaManifest;
  try {
    m = parseDeltaManifest(text, key);
  } catch (err) {
    return messageOf(err);
  }
  return manifestProblem(m, key, cluster, prefix, present) ?? m;
}

/** A record's text; undefined when deleted between the listing and the read (retention). */
async function readText(store: Store, key: string): Promise<string | undefined> {
  try {
    return await readStoredText(store, key);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw new Error(`reading ${key} from ${store.location} failed: ${messageOf(err)}`, { cause: err });
  }
}

function manifestProblem(
  m: DeltaManifest,
  key: string,
  cluster: string,
  prefix: string,
  present: ReadonlySet<string>,
): string | undefined {
  if (m.cluster !== cluster) return `belongs to cluster "${m.cluster}", not "${cluster}"`;
  const named = parseSegmentKey(key);
  if (!named || named.firstRevision !== m.firstRevision || named.lastRevision !== m.lastRevision) {
    return `its name does not match the revisions it describes (${m.firstRevision}..${m.lastRevision})`;
  }
  const object = parseSegmentKey(m.key);
  if (
    !m.key.startsWith(prefix) ||
    object?.kind !== 'object' ||
    object.firstRevision !== m.firstRevision ||
    object.lastRevision !== m.lastRevision
  ) {
    return `its object key ${m.key} is not this segment's`;
  }
  if (!present.has(m.key)) return `its segment object ${m.key} is missing`;
  if (m.chain.startRevision > m.firstRevision) {
    return `its chain starts at ${m.chain.startRevision}, after the segment's first revision ${m.firstRevision}`;
  }
  return undefined;
}

function parseGap(text: string, key: string, cluster: string): DeltaGap | string {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  const parsed = deltaGapSchema.safeParse(json);
  if (!parsed.success) return `not a gap record: ${parsed.error.issues[0]?.message ?? 'invalid'}`;
  if (parsed.data.cluster !== cluster) return `belongs to cluster "${parsed.data.cluster}", not "${cluster}"`;
  return parsed.data;
}
