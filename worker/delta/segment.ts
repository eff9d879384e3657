/**
 * The delta log's on-store format (docs/delta-log.md): the contract between the log writer and
 * everything that reads the log (point-in-time restore, `history`, `list`, retention, drills).
 *
 * A segment holds every watch event of a contiguous revision range, whole revisions only (the
 * events of one etcd transaction are never split across segments):
 *
 *   <cluster>/deltas/r00000000000000012346-r00000000000000012890.events.ndjson.zst[.age]
 *   <cluster>/deltas/r00000000000000012346-r00000000000000012890.manifest.json
 *
 * Names carry both revisions zero-padded to 20 digits so that a listing sorts by revision and a
 * re-sent range (a writer that died after the object but before the manifest) lands on the same
 * name. As with snapshots, the manifest is written after the object: a segment exists for readers
 * only once its manifest does.
 *
 * The body, before compression and encryption, is NDJSON: one event per line, in revision order,
 * the events of one revision in the order etcd sent them. Keys and values are base64 because etcd
 * keys and values are bytes (protobuf-encoded Kubernetes objects), not text.
 */
import { z } from 'zod';
import { CODEC_NAMES, codecOf, type CodecName } from '../codecs.js';
import { ageFieldSchema, encryptionFieldSchema } from '../manifest.js';

export const DELTA_FORMAT = 'etcd-autobackup-delta/v1';
export const DELTA_MANIFEST_SUFFIX = '.manifest.json';
const EVENTS_INFIX = '.events.ndjson';
const REVISION_DIGITS = 20;

/** One watch event, as the writer received it. */
export interface DeltaEvent {
  /** The event's mod revision: the etcd revision whose transaction made it. */
  revision: number;
  type: 'put' | 'delete';
  key: Buffer;
  /** The new value of a put; empty for a delete. */
  value: Buffer;
  /** The key's create revision after the event (0 for a delete). */
  createRevision: number;
  /** The key's version after the event (0 for a delete). */
  version: number;
  /** The lease id as a decimal string, "0" for none. Recorded, never replayed (docs/delta-log.md). */
  lease: string;
  /** Milliseconds since the epoch when the writer received the event (the writer's clock). */
  receivedAt: number;
}

/** The NDJSON line of an event; short field names keep the log small before compression. */
const eventLineSchema = z.object({
  r: z.number().int().positive(),
  t: z.enum(['put', 'delete']),
  k: z.string(),
  v: z.string().optional(),
  c: z.number().int().nonnegative(),
  n: z.number().int().nonnegative(),
  l: z.string().regex(/^\d+$/),
  at: z.number().int().nonnegative(),
});

export function encodeEvent(e: DeltaEvent): string {
  const line: z.infer<typeof eventLineSchema> = {
    r: e.revision,
    t: e.type,
    k: e.key.toString('base64'),
    ...(e.type === 'put' ? { v: e.value.toString('base64') } : {}),
    c: e.createRevision,
    n: e.version,
    l: e.lease,
    at: e.receivedAt,
  };
  return `${JSON.stringify(line)}\n`;
}

/** Parses one line of a segment body; `where` names the segment and line in the error. */
export function decodeEvent(line: string, where: string): DeltaEvent {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    throw new Error(`${where}: not a JSON event line`);
  }
  const parsed = eventLineSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${where}: not a delta event: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const l = parsed.data;
  return {
    revision: l.r,
    type: l.t,
    key: Buffer.from(l.k, 'base64'),
    value: l.v === undefined ? Buffer.alloc(0) : Buffer.from(l.v, 'base64'),
    createRevision: l.c,
    version: l.n,
    lease: l.l,
    receivedAt: l.at,
  };
}

export function deltasPrefix(cluster: string): string {
  return `${cluster}/deltas/`;
}

function padRevision(revision: number): string {
  return `r${String(revision).padStart(REVISION_DIGITS, '0')}`;
}

/** The name both keys of a segment share: `r<first>-r<last>`. */
export function segmentId(firstRevision: number, lastRevision: number): string {
  if (!Number.isSafeInteger(firstRevision) || firstRevision < 1 || lastRevision < firstRevision) {
    throw new Error(`invalid segment range ${firstRevision}..${lastRevision}`);
  }
  return `${padRevision(firstRevision)}-${padRevision(lastRevision)}`;
}

/** The key of the segment object; the suffix follows the codec, then `.age` for age objects. */
export function segmentObjectKey(
  cluster: string,
  firstRevision: number,
  lastRevision: number,
  compression: CodecName,
  age: boolean,
): string {
  const id = segmentId(firstRevision, lastRevision);
  return `${deltasPrefix(cluster)}${id}${EVENTS_INFIX}${codecOf(compression).extension}${age ? '.age' : ''}`;
}

export function segmentManifestKey(cluster: string, firstRevision: number, lastRevision: number): string {
  return `${deltasPrefix(cluster)}${segmentId(firstRevision, lastRevision)}${DELTA_MANIFEST_SUFFIX}`;
}

const SEGMENT_NAME = /^r(\d{20})-r(\d{20})(\.events\.ndjson(\.gz|\.zst)?(\.age)?|\.manifest\.json)$/;

/** The revision range and kind of a key under `deltas/`, or undefined for anything else. */
export function parseSegmentKey(
  key: string,
): { firstRevision: number; lastRevision: number; kind: 'object' | 'manifest' } | undefined {
  const base = key.slice(key.lastIndexOf('/') + 1);
  const m = SEGMENT_NAME.exec(base);
  if (!m) return undefined;
  const firstRevision = Number(m[1]);
  const lastRevision = Number(m[2]);
  if (!Number.isSafeInteger(lastRevision) || lastRevision < firstRevision || firstRevision < 1) return undefined;
  return { firstRevision, lastRevision, kind: m[3] === DELTA_MANIFEST_SUFFIX ? 'manifest' : 'object' };
}

export const deltaManifestSchema = z.object({
  format: z.literal(DELTA_FORMAT),
  cluster: z.string(),
  /** Key of the segment object, relative to the store's base prefix. */
  key: z.string(),
  firstRevision: z.number().int().positive(),
  lastRevision: z.number().int().positive(),
  eventCount: z.number().int().positive(),
  /** Receive times (writer's clock) of the first and last event, ISO 8601. */
  firstEventAt: z.string(),
  lastEventAt: z.string(),
  /** When the segment was published. */
  createdAt: z.string(),
  /**
   * The chain the segment belongs to: a chain starts right after a full snapshot's revision and
   * runs without a gap. `startRevision` is its first revision (the snapshot's revision + 1).
   */
  chain: z.object({
    /** Id of the full snapshot the chain follows (the snapshot a replay starts from). */
    follows: z.string(),
    startRevision: z.number().int().positive(),
  }),
  /** Bytes of the NDJSON body before compression and encryption. */
  bodySize: z.number().int().nonnegative(),
  /** Hex SHA-256 of the NDJSON body: what a reader checks after decrypting and decompressing. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Bytes and hex SHA-256 of the stored object, so a segment can be checked without a key. */
  storedSize: z.number().int().nonnegative(),
  storedSha256: z.string().regex(/^[0-9a-f]{64}$/),
  compression: z.enum(CODEC_NAMES),
  /** The stream stages in order, as in snapshot manifests (e.g. ["zstd", "age"]). */
  transforms: z.array(z.string()),
  /** As in snapshot manifests: present when AES-GCM encrypted. */
  encryption: encryptionFieldSchema.optional(),
  /** As in snapshot manifests: present for a standard age file. */
  age: ageFieldSchema.optional(),
  etcd: z.object({
    endpoint: z.string(),
    memberId: z.string(),
    clusterId: z.string(),
    version: z.string(),
  }),
  tool: z.object({ name: z.string(), version: z.string() }),
});

export type DeltaManifest = z.infer<typeof deltaManifestSchema>;

export function parseDeltaManifest(text: string, key: string): DeltaManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`delta manifest ${key} is not JSON`);
  }
  const result = deltaManifestSchema.safeParse(json);
  if (!result.success) {
    throw new Error(`${key} is not an ${DELTA_FORMAT} manifest: ${result.error.issues[0]?.message ?? 'invalid'}`);
  }
  const m = result.data;
  if (m.lastRevision < m.firstRevision) throw new Error(`delta manifest ${key}: lastRevision before firstRevision`);
  return m;
}

/**
 * A gap the writer found and could not fill (etcd compacted past its position, a segment lost):
 * recorded as `<cluster>/deltas/gaps/<first missing>-<last missing>.json` so that `list` can say why
 * a chain ends. A new chain starts after the full snapshot enqueued when the gap was found.
 */
export const deltaGapSchema = z.object({
  format: z.literal(DELTA_FORMAT),
  cluster: z.string(),
  /** First revision the log does not hold. */
  fromRevision: z.number().int().positive(),
  /** Last revision it does not hold, when known (the revision the new chain's snapshot holds). */
  toRevision: z.number().int().positive().optional(),
  reason: z.enum(['compacted', 'segment-missing', 'watch-canceled']),
  detail: z.string(),
  detectedAt: z.string(),
});

export type DeltaGap = z.infer<typeof deltaGapSchema>;

export function gapKey(cluster: string, fromRevision: number): string {
  return `${deltasPrefix(cluster)}gaps/${padRevision(fromRevision)}.json`;
}

/** A segment's revision range, as its name tells it. */
export interface SegmentRange {
  firstRevision: number;
  lastRevision: number;
}

/** A run of segments without a gap, as `list` shows it and restore walks it. */
export interface DeltaChain {
  /** Id of the full snapshot the chain follows. */
  follows: string;
  startRevision: number;
  /** The newest revision the chain holds without a gap from `startRevision`. */
  endRevision: number;
  /** Segments in revision order, contiguous: each starts at the previous one's lastRevision + 1. */
  segments: DeltaManifest[];
  newestEventAt: string;
  /**
   * True when the chain starts right after its snapshot (`startRevision` is the chain's own
   * start): only such a chain can be replayed from that snapshot. The part after a gap is not.
   */
  fromSnapshot: boolean;
}

export interface ChainProblem {
  kind: 'gap' | 'overlap';
  /** The chain's `follows` id. */
  follows: string;
  /** The revision the chain expected next, and what the next segment starts at. */
  expected: number;
  found: number;
}

/**
 * Groups segment manifests into chains and reports where a chain breaks. Pure: the writer (to
 * resume), `list`, retention and restore all read the log through it. Segments of one chain that
 * are not contiguous are split there (a gap) — never papered over; a segment overlapping the
 * previous one (a range re-sent with other boundaries) is skipped when it is wholly covered and
 * reported as an overlap otherwise.
 */
export function buildChains(manifests: readonly DeltaManifest[]): { chains: DeltaChain[]; problems: ChainProblem[] } {
  const byChain = new Map<string, DeltaManifest[]>();
  for (const m of manifests) {
    const id = `${m.chain.follows}@${m.chain.startRevision}`;
    const list = byChain.get(id) ?? [];
    list.push(m);
    byChain.set(id, list);
  }
  const chains: DeltaChain[] = [];
  const problems: ChainProblem[] = [];
  for (const list of byChain.values()) {
    list.sort((a, b) => a.firstRevision - b.firstRevision || b.lastRevision - a.lastRevision);
    const first = list[0];
    if (!first) continue;
    let current: DeltaChain | undefined;
    let expected = first.chain.startRevision;
    for (const m of list) {
      if (current && m.lastRevision <= current.endRevision) continue; // wholly covered re-send
      if (m.firstRevision !== expected) {
        problems.push({
          kind: m.firstRevision < expected ? 'overlap' : 'gap',
          follows: m.chain.follows,
          expected,
          found: m.firstRevision,
        });
        if (m.firstRevision < expected) continue;
        current = undefined;
      }
      if (!current) {
        current = {
          follows: m.chain.follows,
          startRevision: m.firstRevision,
          endRevision: m.lastRevision,
          segments: [],
          newestEventAt: m.lastEventAt,
          fromSnapshot: m.firstRevision === m.chain.startRevision,
        };
        chains.push(current);
      }
      current.segments.push(m);
      current.endRevision = m.lastRevision;
      current.newestEventAt = m.lastEventAt;
      expected = m.lastRevision + 1;
    }
  }
  chains.sort((a, b) => a.startRevision - b.startRevision);
  return { chains, problems };
}
