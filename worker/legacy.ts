/**
 * The original chart's backups. The service this project replaces ran, per backup,
 *
 *   etcdctl snapshot save etcd-backup.db
 *   timestamp=$(date -u +"%Y-%m-%dT%H:%M:%S"); folder_name=$(date -u +"%Y-%m-%d")
 *   <upload> ${folder_name}/etcd-backup-${timestamp}.db      (at the bucket's root)
 *
 * so its objects are plain etcd snapshots named `2024-05-01/etcd-backup-2024-05-01T03:04:05.db`,
 * with no manifest. Without one nothing says which snapshot an object should be, so what can be
 * proven is what the bytes prove themselves: etcd's SHA-256 trailer (`etcdctl snapshot save`
 * keeps it; etcd's own rule for whether a file has one is `size % 512 == 32`), bbolt's meta pages
 * (bbolt-header.ts) and `snapshot status` (etcd-tools.ts). Naming and classification are pure;
 * the rest is the I/O of list, verify and restore for these objects.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { IntegrityError, messageOf } from '../core/errors.js';
import { ByteMeter, type ProgressListener } from '../core/progress.js';
import { BBOLT_HEAD_BYTES, checkBboltHeader } from './bbolt-header.js';
import { findEtcdTools, type SnapshotTool } from './etcd-tools.js';
import { firstFailure } from './first-failure.js';
import { Sha256TrailerVerifier, TRAILER_SIZE } from './sha256-trailer.js';
import { NotFoundError, type Store } from './stores/store.js';
import { restoreStaged, type MemberSettings } from './restore.js';
import { readHead, snapshotStatus, type SnapshotStatus } from './verify.js';

/**
 * `<YYYY-MM-DD>/etcd-backup-<YYYY-MM-DDTHH:MM:SS>.db`, both UTC. The folder is not required to be
 * the timestamp's day: the original called `date` twice, so a backup at midnight may have landed
 * in the next day's folder.
 */
export const LEGACY_KEY = /^(\d{4}-\d{2}-\d{2})\/etcd-backup-(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})\.db$/;

/** One of the original chart's objects. */
export interface LegacyObject {
  /** Key relative to the store's prefix (the bucket's root for the original's layout). */
  key: string;
  /** The UTC time in the object's name, as ISO 8601. */
  createdAt: string;
  /** Size in bytes as stored. */
  storedSize: number;
  /** Last modification time as the provider reports it. */
  modified?: string;
}

/** The time in a legacy object's name, or undefined when `key` is not one (or names no real date). */
export function parseLegacyKey(key: string): { createdAt: string } | undefined {
  const m = LEGACY_KEY.exec(key);
  if (!m) return undefined;
  const [, folder, day, time] = m;
  const createdAt = `${day}T${time}.000Z`;
  // Date.parse accepts 2024-02-31; a round trip does not.
  const valid = (iso: string) => {
    const t = Date.parse(iso);
    return Number.isFinite(t) && new Date(t).toISOString() === iso;
  };
  if (!valid(createdAt) || !valid(`${folder}T00:00:00.000Z`)) return undefined;
  return { createdAt };
}

export function isLegacyKey(key: string): boolean {
  return parseLegacyKey(key) !== undefined;
}

/**
 * Whether the snapshot bytes end with etcd's SHA-256 trailer, by etcd's own rule: bbolt files are
 * a whole number of pages (multiples of 512), so 32 bytes over means the trailer is there.
 */
export function hasShaTrailer(size: number): boolean {
  return size % 512 === TRAILER_SIZE;
}

/** The legacy objects among `objects`, newest first (the names sort by time). */
export function legacyObjects(objects: readonly { key: string; size: number; modified?: Date }[]): LegacyObject[] {
  const out: LegacyObject[] = [];
  for (const o of objects) {
    const parsed = parseLegacyKey(o.key);
    if (!parsed) continue;
    out.push({
      key: o.key,
      createdAt: parsed.createdAt,
      storedSize: o.size,
      ...(o.modified ? { modified: o.modified.toISOString() } : {}),
    });
  }
  return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.key.localeCompare(a.key));
}

/** Every legacy object in the store (at the root of its prefix), newest first. */
export async function listLegacy(store: Store): Promise<LegacyObject[]> {
  return legacyObjects(await store.list(''));
}

/** The legacy object `key`; fails naming the pattern or the store when it is not one. */
export async function findLegacy(store: Store, key: string): Promise<LegacyObject> {
  if (!isLegacyKey(key)) {
    throw new NotFoundError(
      key,
      `${store.location} (the original chart's objects are named <YYYY-MM-DD>/etcd-backup-<YYYY-MM-DDTHH:MM:SS>.db)`,
    );
  }
  const folder = key.slice(0, key.indexOf('/') + 1);
  const found = legacyObjects(await store.list(folder)).find((o) => o.key === key);
  if (!found)
    throw new NotFoundError(key, `${store.location}; run "etcd-autobackup list --include-legacy" to see them`);
  return found;
}

export interface LegacyVerifyOptions {
  store: Store;
  object: LegacyObject;
  /** etcdctl binary (config etcd.etcdctl); used when no etcdutl is on PATH (etcd-tools.ts). */
  etcdctl: string;
  /** The tool already chosen (findEtcdTools); found again when absent. */
  tool?: SnapshotTool;
  /** Where the temporary copy goes; the system temp dir by default. */
  tempDir?: string;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
}

export interface LegacyVerifyReport {
  object: LegacyObject;
  /** Hex SHA-256 of the database (without the trailer). */
  sha256: string;
  dbSize: number;
  /** Whether the object carried etcd's SHA-256 trailer, and so whether `sha256` was checked against it. */
  trailerChecked: boolean;
  status: SnapshotStatus;
  tool: SnapshotTool;
  bbolt: { pageSize: number; txid: string; pages: string };
}

/** Downloads, checks and opens a legacy object, then removes the temporary copy whatever happened. */
export async function verifyLegacy(options: LegacyVerifyOptions): Promise<LegacyVerifyReport> {
  const dir = await mkdtemp(join(options.tempDir ?? tmpdir(), 'etcd-autobackup-verify-'));
  try {
    const { file: _file, ...report } = await verifyLegacyInto(dir, options);
    return report;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The verify steps with the snapshot left in `dir/snapshot.db`, for restore to use. */
export async function verifyLegacyInto(
  dir: string,
  options: LegacyVerifyOptions,
): Promise<LegacyVerifyReport & { file: string }> {
  const { store, object } = options;
  const what = `legacy object ${object.key} in ${store.location}`;
  let got: { body: Readable; size: number };
  try {
    got = await store.get(object.key);
  } catch (err) {
    if (err instanceof NotFoundError) throw new IntegrityError(`${what} is missing`);
    throw new Error(`reading ${what} failed: ${messageOf(err)}`, { cause: err });
  }
  if (got.size !== object.storedSize) {
    got.body.destroy();
    // Restore decided from the listed size whether etcd must skip its hash check.
    throw new IntegrityError(
      `${what} is ${got.size} bytes but was listed as ${object.storedSize}: it changed meanwhile`,
    );
  }
  const trailer = hasShaTrailer(got.size);
  const failures = firstFailure<'read' | 'verify' | 'write'>();
  const meter = new ByteMeter(options.onProgress);
  meter.total = got.size;
  const check = trailer ? new Sha256TrailerVerifier() : new PlainSha256();
  const file = join(dir, 'snapshot.db');
  try {
    await pipeline(
      [
        failures.tag(got.body, 'read'),
        meter,
        failures.tag(check, 'verify'),
        failures.tag(createWriteStream(file, { flags: 'wx' }), 'write'),
      ],
      options.signal ? { signal: options.signal } : {},
    );
  } catch (err) {
    if (options.signal?.aborted) throw new Error(`download of ${what} interrupted`, { cause: err });
    const origin = failures.origin;
    const why = messageOf(origin?.err ?? err);
    if (origin?.stage === 'verify') throw new IntegrityError(`${what} is corrupt: ${why}`, { cause: err });
    if (origin?.stage === 'write') throw new Error(`writing the snapshot to ${file} failed: ${why}`, { cause: err });
    throw new Error(`reading ${what} failed: ${why}`, { cause: err });
  }
  const { sha256, dbSize } = check.result();
  const header = checkBboltHeader(await readHead(file, BBOLT_HEAD_BYTES), dbSize);
  if (!header.ok) throw new IntegrityError(`${what} is not a usable etcd database: ${header.problem}`);
  const tool =
    options.tool ??
    (await findEtcdTools({ etcdctl: options.etcdctl, ...(options.signal ? { signal: options.signal } : {}) }));
  const status = await snapshotStatus(tool, file, options.signal);
  return {
    object,
    sha256,
    dbSize,
    trailerChecked: trailer,
    status,
    tool,
    bbolt: { pageSize: header.pageSize, txid: String(header.txid), pages: String(header.pages) },
    file,
  };
}

/** For objects without a trailer: passes bytes through and hashes all of them, for the report. */
class PlainSha256 extends Transform {
  private readonly hash = createHash('sha256');
  private bytes = 0;
  private facts: { sha256: string; dbSize: number } | undefined;

  result(): { sha256: string; dbSize: number } {
    if (!this.facts) throw new Error('snapshot stream not read yet');
    return this.facts;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.facts = { sha256: this.hash.digest('hex'), dbSize: this.bytes };
    done();
  }
}

export interface LegacyRestoreOptions extends LegacyVerifyOptions {
  /** Target data dir: must not exist or be empty. */
  dataDir: string;
  member?: MemberSettings;
}

export interface LegacyRestoreReport extends LegacyVerifyReport {
  dataDir: string;
  member: MemberSettings;
}

/** Verifies a legacy object and restores it into a new data dir, all or nothing (restore.ts). */
export async function restoreLegacy(options: LegacyRestoreOptions): Promise<LegacyRestoreReport> {
  const skipHashCheck = !hasShaTrailer(options.object.storedSize);
  const { report, dataDir, member } = await restoreStaged(
    { ...options, skipHashCheck },
    async (work, tool, restore) => {
      // verifyLegacyInto runs `snapshot status` itself: nothing else to check during the restore.
      const { file, ...report } = await verifyLegacyInto(work, { ...options, tool: await tool });
      await restore(report.tool, file, options.signal ?? new AbortController().signal);
      return report;
    },
  );
  return { ...report, dataDir, member };
}
