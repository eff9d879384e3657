/**
 * Publishing one delta-log segment: the NDJSON body through the snapshots' own compression and
 * encryption stages into the store, then its manifest. As with snapshots, the manifest is written
 * last, so a segment exists for readers only once it is whole.
 */
import { createHash } from 'node:crypto';
import { Readable, PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../../core/config/index.js';
import { messageOf, SnapshotError, type SnapshotStage } from '../../core/errors.js';
import { TOOL } from '../../core/version.js';
import { firstFailure } from '../first-failure.js';
import { prepareStoreStages } from '../store-stages.js';
import type { Store } from '../stores/store.js';
import {
  deltaGapSchema,
  encodeEvent,
  gapKey,
  segmentManifestKey,
  segmentObjectKey,
  DELTA_FORMAT,
  type DeltaEvent,
  type DeltaGap,
  type DeltaManifest,
} from './segment.js';

/** A segment's body as the writer buffers it: encoded lines and what the manifest says about them. */
export interface SegmentContent {
  /**
   * The NDJSON body (one line per event, in revision order, whole revisions only) as consecutive
   * pieces of the builder's reused chunks: a line may span two pieces.
   */
  chunks: readonly Buffer[];
  firstRevision: number;
  lastRevision: number;
  eventCount: number;
  /** Receive times (ms since the epoch) of the first and last event. */
  firstEventAt: number;
  lastEventAt: number;
  /** Sum of the chunks' lengths: the body's size before compression and encryption. */
  bytes: number;
  /**
   * Gives the chunks back to the builder for the next segments, once the body is stored (never
   * while a write may still read them). Not calling it only leaves them to the garbage collector.
   */
  release(): void;
}

export interface SegmentBuilderOptions {
  /**
   * Size of the chunks lines are copied into.
   * @defaultValue 64 KiB
   */
  chunkBytes?: number;
}

/**
 * Accumulates events into a segment's content; the writer's buffer. Lines are copied into a few
 * large chunks that come back (release()) once their segment is stored, instead of one small
 * Buffer per event: those live for seconds, so they reach the old generation and their memory
 * returns only at a full GC, long after their segment is stored; at a high write rate that lag,
 * not the buffer, was most of the writer's memory. With chunks the buffer's memory is allocated
 * once (up to the writer's bound: one segment filling, one being stored) and reused.
 */
export class SegmentBuilder {
  private readonly chunkBytes: number;
  private readonly free: Buffer[] = [];
  private filled: Buffer[] = [];
  private current: Buffer | undefined;
  private used = 0;
  private count = 0;
  private first = 0;
  private last = 0;
  private firstAt = 0;
  private lastAt = 0;
  private size = 0;

  constructor(options: SegmentBuilderOptions = {}) {
    this.chunkBytes = options.chunkBytes ?? 64 * 1024;
  }

  get bytes(): number {
    return this.size;
  }

  get eventCount(): number {
    return this.count;
  }

  /** The revision of the newest event added, 0 when empty. */
  get lastRevision(): number {
    return this.last;
  }

  /** Receive time of the oldest event held, undefined when empty. */
  get oldestReceivedAt(): number | undefined {
    return this.count === 0 ? undefined : this.firstAt;
  }

  add(event: DeltaEvent): void {
    if (this.count > 0 && event.revision < this.last) {
      throw new Error(`event of revision ${event.revision} after revision ${this.last}: events must come in order`);
    }
    // ASCII only (base64, digits, fixed names): one byte per character.
    let line = encodeEvent(event);
    if (this.count === 0) {
      this.first = event.revision;
      this.firstAt = event.receivedAt;
    }
    this.last = event.revision;
    this.lastAt = Math.max(this.lastAt, event.receivedAt);
    this.count++;
    this.size += line.length;
    for (;;) {
      if (!this.current || this.used === this.current.length) this.nextChunk();
      const chunk = this.current as Buffer;
      const written = chunk.write(line, this.used, 'latin1');
      this.used += written;
      if (written === line.length) return;
      line = line.slice(written);
    }
  }

  /** The content so far (undefined when empty), and a fresh empty builder state. */
  take(): SegmentContent | undefined {
    if (this.count === 0) return undefined;
    const owned = this.current ? [...this.filled, this.current] : this.filled;
    const chunks = this.current ? [...this.filled, this.current.subarray(0, this.used)] : this.filled;
    let released = false;
    const content: SegmentContent = {
      chunks,
      firstRevision: this.first,
      lastRevision: this.last,
      eventCount: this.count,
      firstEventAt: this.firstAt,
      lastEventAt: this.lastAt,
      bytes: this.size,
      release: () => {
        if (released) return;
        released = true;
        this.free.push(...owned);
      },
    };
    this.filled = [];
    this.current = undefined;
    this.used = this.count = 0;
    this.first = this.last = this.firstAt = this.lastAt = this.size = 0;
    return content;
  }

  private nextChunk(): void {
    if (this.current) this.filled.push(this.current);
    // Not from Buffer's shared pool: each chunk is its own memory, reused as a whole.
    this.current = this.free.pop() ?? Buffer.allocUnsafeSlow(this.chunkBytes);
    this.used = 0;
  }
}

/** The content of a list of events (whole revisions, in order); for tests and tools. */
export function segmentContent(events: readonly DeltaEvent[]): SegmentContent {
  const b = new SegmentBuilder();
  for (const e of events) b.add(e);
  const content = b.take();
  if (!content) throw new Error('a segment is never empty');
  return content;
}

export interface WriteSegmentOptions {
  /** Cluster name and the snapshot stages' settings (compression, level, encryption), as for snapshots. */
  config: Pick<Config, 'cluster'> & {
    snapshot: Pick<Config['snapshot'], 'compression' | 'compressionLevel'>;
  } & Partial<Pick<Config, 'encryption'>>;
  content: SegmentContent;
  /** The chain the segment continues (segment.ts, DeltaManifest.chain). */
  chain: DeltaManifest['chain'];
  /** The member the events were watched on. */
  etcd: DeltaManifest['etcd'];
  /**
   * Aborts the write; nothing is published.
   * @defaultValue never aborted
   */
  signal?: AbortSignal;
  /**
   * Clock for `createdAt`.
   * @defaultValue the system clock
   */
  now?: () => Date;
}

/**
 * Stores the segment object and then its manifest; returns the manifest. A failure rejects with a
 * SnapshotError naming the stage (compress, encrypt, upload, publish) and publishes nothing new:
 * an object left without a manifest is invisible to readers and swept as an orphan by prune.
 * Writing the same range again replaces both under the same names (idempotent for readers).
 */
export async function writeSegment(store: Store, options: WriteSegmentOptions): Promise<DeltaManifest> {
  const { config, content } = options;
  const now = options.now ?? (() => new Date());
  if (content.eventCount < 1 || content.chunks.reduce((n, c) => n + c.length, 0) !== content.bytes) {
    throw new Error('a delta segment is never empty and its chunks hold its bytes');
  }
  const prepared = await prepareStoreStages({ config, hashStored: true });
  const failures = firstFailure<SnapshotStage>();
  const stages = prepared.open(failures.tag);
  const key = segmentObjectKey(
    config.cluster,
    content.firstRevision,
    content.lastRevision,
    config.snapshot.compression,
    stages.age !== undefined,
  );
  const bodyHash = createHash('sha256');
  for (const chunk of content.chunks) bodyHash.update(chunk);
  const body = failures.tag(new PassThrough(), 'upload');
  const signal = options.signal;
  const flowing = pipeline([Readable.from(content.chunks), ...stages.stages, body], signal ? { signal } : {});
  const uploading = store.put(key, body, { contentType: 'application/octet-stream', ...(signal ? { signal } : {}) });
  const [flow, upload] = await Promise.allSettled([flowing, uploading]);
  if (flow.status === 'rejected' || upload.status === 'rejected') {
    const origin = failures.origin;
    const stage: SnapshotStage = origin?.stage ?? (upload.status === 'rejected' ? 'upload' : 'stream');
    const err: unknown =
      origin?.err ??
      (upload.status === 'rejected' ? upload.reason : flow.status === 'rejected' ? flow.reason : undefined);
    throw new SnapshotError(stage, `writing delta segment ${key} failed: ${messageOf(err)}; nothing was published`, {
      cause: err,
    });
  }
  const storedHash = stages.storedHash;
  if (!storedHash) throw new Error('segment stages must hash the stored bytes');
  const manifest: DeltaManifest = {
    format: DELTA_FORMAT,
    cluster: config.cluster,
    key,
    firstRevision: content.firstRevision,
    lastRevision: content.lastRevision,
    eventCount: content.eventCount,
    firstEventAt: new Date(content.firstEventAt).toISOString(),
    lastEventAt: new Date(content.lastEventAt).toISOString(),
    createdAt: now().toISOString(),
    chain: options.chain,
    bodySize: content.bytes,
    sha256: bodyHash.digest('hex'),
    storedSize: upload.value.size,
    storedSha256: storedHash.digest(),
    compression: config.snapshot.compression,
    transforms: stages.transforms,
    ...(stages.encryption ? { encryption: stages.encryption } : {}),
    ...(stages.age ? { age: stages.age } : {}),
    etcd: options.etcd,
    tool: TOOL,
  };
  const manifestKey = segmentManifestKey(config.cluster, content.firstRevision, content.lastRevision);
  try {
    await store.put(manifestKey, Readable.from([JSON.stringify(manifest, null, 2)]), {
      contentType: 'application/json',
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    // The object stays: it may belong to an earlier publication of the same range (a manifest
    // already there), and an object without a manifest is swept as an orphan by prune anyway.
    throw new SnapshotError('publish', `writing ${manifestKey} to ${store.location} failed: ${messageOf(err)}`, {
      cause: err,
    });
  }
  return manifest;
}

/**
 * Records a gap (segment.ts, deltaGapSchema) under its first missing revision. Writing the same
 * gap again (e.g. with `toRevision` once the new chain's snapshot is known) replaces the record.
 */
export async function writeGap(store: Store, gap: DeltaGap): Promise<void> {
  const parsed = deltaGapSchema.parse(gap);
  await store.put(gapKey(parsed.cluster, parsed.fromRevision), Readable.from([JSON.stringify(parsed, null, 2)]), {
    contentType: 'application/json',
  });
}
