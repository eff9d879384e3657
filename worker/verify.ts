/**
 * Reads a stored snapshot back and proves it is the one that was written: the bytes are
 * decrypted (when encrypted) and decompressed into a file, which is then hashed and checked
 * against etcd's SHA-256 trailer and the manifest, its bbolt meta pages are checked
 * (bbolt-header.ts), and etcdutl or etcdctl (etcd-tools.ts) opens the database beside the
 * hashing. The result is a file `snapshot restore` can use.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { IntegrityError, messageOf } from '../core/errors.js';
import { openStoredObject } from './stored-object.js';
import { ByteMeter, type ProgressListener } from '../core/progress.js';
import { CODEC_TRANSFORMS, codecOf } from './codecs.js';
import { AGE_TRANSFORM, type AgeIdentities } from './crypto/age.js';
import { ageDecryptStage } from './crypto/age-stored.js';
import { BBOLT_HEAD_BYTES, checkBboltHeader } from './bbolt-header.js';
import { ENCRYPT_TRANSFORM } from './crypto/format.js';
import type { KeyRing } from './crypto/keys.js';
import { decryptStage } from './crypto/stages.js';
import { findEtcdTools, lastLines, runTool, statusArgv, type SnapshotTool } from './etcd-tools.js';
import { firstFailure } from './first-failure.js';
import type { Manifest } from './manifest.js';
import { TRAILER_SIZE } from './sha256-trailer.js';
import type { Store } from './stores/store.js';

/** The stages this version knows how to undo, by the names backup.ts records. */
const KNOWN_TRANSFORMS = new Set(['verify-sha256', ...CODEC_TRANSFORMS, ENCRYPT_TRANSFORM, AGE_TRANSFORM]);

export interface DownloadOptions {
  store: Store;
  manifest: Manifest;
  /** File to write the snapshot to (as etcd sent it: database plus trailer); must not exist. */
  dest: string;
  signal?: AbortSignal;
  /** Progress of the bytes read from the store. */
  onProgress?: ProgressListener;
  /** Keys for encrypted snapshots (loadKeyRing); the one whose id the manifest names is used. */
  keys?: KeyRing;
  /** age identities (loadIdentities), for snapshots written to age recipients. */
  identities?: AgeIdentities | undefined;
}

export interface DownloadFacts {
  sha256: string;
  dbSize: number;
  snapshotSize: number;
}

/**
 * Writes the snapshot of `manifest` to `dest` (decrypted, decompressed), failing with an
 * IntegrityError when a stage cannot undo its transform. It does not hash the database:
 * checkSnapshotFile does that on the written file, beside `snapshot status` and `snapshot
 * restore`, so a codec that can write the file itself (zstd) keeps the database out of Node.
 */
export async function downloadSnapshot(options: DownloadOptions): Promise<void> {
  const { store, manifest, dest } = options;
  const what = describe(store, manifest);
  const unknown = manifest.transforms.filter((t) => !KNOWN_TRANSFORMS.has(t));
  if (unknown.length > 0) {
    throw new IntegrityError(
      `${what} was written with ${unknown.join(', ')}, which this version cannot read back; use a newer etcd-autobackup`,
    );
  }
  // Before the download, so that a missing key costs nothing.
  const decrypt = decryptStage(manifest, options.keys, what) ?? ageDecryptStage(manifest, options.identities, what);

  const object = await openStoredObject(store, manifest, what);

  type Stage = 'read' | 'decrypt' | 'decompress' | 'write';
  const failures = firstFailure<Stage>();
  const tag = failures.tag;

  const meter = new ByteMeter(options.onProgress);
  meter.total = object.size;
  const stages: NodeJS.ReadWriteStream[] = [meter];
  if (decrypt) stages.push(tag(decrypt, 'decrypt'));
  // The manifest, not the object's name, says how it was compressed (old objects: gzip or none).
  const codec = codecOf(manifest.compression);
  const sink: NodeJS.WritableStream[] = codec.decompressTo
    ? // The stage writes dest itself and ends without output.
      [tag(codec.decompressTo(dest), 'decompress'), new Discard()]
    : [
        ...(codec.decompress ? [tag(codec.decompress(), 'decompress')] : []),
        tag(createWriteStream(dest, { flags: 'wx' }), 'write'),
      ];
  try {
    await pipeline([tag(object.body, 'read'), ...stages, ...sink], {
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (err) {
    if (options.signal?.aborted) throw new Error(`download of ${what} interrupted`, { cause: err });
    const origin = failures.origin;
    const stage = origin?.stage ?? 'read';
    const why = messageOf(origin?.err ?? err);
    switch (stage) {
      case 'decrypt':
        throw new IntegrityError(`${what} cannot be decrypted: ${why}`, { cause: err });
      case 'decompress':
        throw new IntegrityError(`${what} is corrupt: it does not decompress as ${codec.name} (${why})`, {
          cause: err,
        });
      case 'write':
        throw new Error(`writing the snapshot to ${dest} failed: ${why}`, { cause: err });
      case 'read':
        throw new Error(`reading ${what} failed: ${why}`, { cause: err });
    }
  }
}

/**
 * Hashes a downloaded snapshot file and checks it against etcd's trailer and the manifest, sizes
 * included. It reads what `snapshot restore` reads, at Node's SHA-256 speed (SHA-NI where the CPU
 * has it; etcdctl 3.4's own check hashed at a fifth of that here), which is why restore passes
 * `--skip-hash-check` and runs this beside it instead.
 */
export async function checkSnapshotFile(
  file: string,
  manifest: Manifest,
  what: string,
  signal?: AbortSignal,
): Promise<DownloadFacts> {
  const hashed = await hashSnapshotFile(file, signal);
  const problem = snapshotFileProblem(hashed, manifest);
  if (problem) throw new IntegrityError(`${what} ${problem}`);
  return { sha256: hashed.sha256, dbSize: hashed.dbSize, snapshotSize: hashed.snapshotSize };
}

/** What hashSnapshotFile read: the database's SHA-256 and the trailer beside it. */
export interface HashedSnapshot {
  sha256: string;
  /** The last 32 bytes, hex; empty when the file is shorter than that. */
  trailer: string;
  dbSize: number;
  snapshotSize: number;
}

/** Why a hashed snapshot is not the manifest's, or undefined when it is. */
export function snapshotFileProblem(h: HashedSnapshot, manifest: Manifest): string | undefined {
  if (h.snapshotSize < TRAILER_SIZE)
    return `is corrupt: snapshot too short (${h.snapshotSize} bytes): no SHA-256 trailer`;
  if (h.sha256 !== h.trailer) {
    return `is corrupt: SHA-256 mismatch: the database hashes to ${h.sha256} but the snapshot trailer says ${h.trailer}`;
  }
  if (h.sha256 !== manifest.sha256) {
    return `does not match its manifest: the database hashes to ${h.sha256} but the manifest says ${manifest.sha256}`;
  }
  if (h.dbSize !== manifest.dbSize || h.snapshotSize !== manifest.snapshotSize) {
    return `does not match its manifest: ${h.snapshotSize} snapshot bytes (${h.dbSize} database) but the manifest says ${manifest.snapshotSize} (${manifest.dbSize})`;
  }
  return undefined;
}

const HASH_READ_BYTES = 1024 * 1024;

/** SHA-256 of all but the last 32 bytes of `file`, and those 32 bytes; one reused read buffer. */
export async function hashSnapshotFile(file: string, signal?: AbortSignal): Promise<HashedSnapshot> {
  const handle = await open(file, 'r');
  try {
    const size = (await handle.stat()).size;
    const dbSize = Math.max(0, size - TRAILER_SIZE);
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(HASH_READ_BYTES);
    let at = 0;
    while (at < dbSize) {
      signal?.throwIfAborted();
      const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, dbSize - at), at);
      if (bytesRead === 0) throw new Error(`${file} shrank while it was hashed`);
      hash.update(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
    const trailer = Buffer.alloc(size - dbSize);
    await handle.read(trailer, 0, trailer.length, dbSize);
    return { sha256: hash.digest('hex'), trailer: trailer.toString('hex'), dbSize, snapshotSize: size };
  } finally {
    await handle.close();
  }
}

/** Swallows what a stage passes on; the end of a pipeline whose last stage wrote its own file. */
class Discard extends Writable {
  override _write(_chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    done();
  }
}

function describe(store: Store, manifest: Manifest): string {
  return `snapshot ${manifest.id} (${manifest.key} in ${store.location})`;
}

/** What `etcdutl/etcdctl snapshot status -w json` reports (etcdutl 3.6 adds `version`). */
export interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

export async function snapshotStatus(tool: SnapshotTool, file: string, signal?: AbortSignal): Promise<SnapshotStatus> {
  let out: string;
  try {
    out = await runTool(tool, statusArgv(file), signal);
  } catch (err) {
    throw new IntegrityError(`${tool.name} cannot read the snapshot database: ${messageOf(err)}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(out);
  } catch {
    throw new Error(`${tool.name} snapshot status printed something other than JSON: ${lastLines(out)}`);
  }
  const s = parsed as Partial<Record<keyof SnapshotStatus, unknown>>;
  const fields = ['hash', 'revision', 'totalKey', 'totalSize'] as const;
  if (typeof parsed !== 'object' || parsed === null || fields.some((f) => typeof s[f] !== 'number')) {
    throw new Error(`${tool.name} snapshot status gave unexpected JSON: ${lastLines(out)}`);
  }
  return parsed as SnapshotStatus;
}

export interface VerifyOptions {
  store: Store;
  manifest: Manifest;
  /** etcdctl binary (config etcd.etcdctl); used when no etcdutl is on PATH (etcd-tools.ts). */
  etcdctl: string;
  /** The tool already chosen (findEtcdTools); found again when absent. */
  tool?: SnapshotTool;
  /** Where the temporary copy goes; the system temp dir by default. It needs room for the uncompressed snapshot. */
  tempDir?: string;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  keys?: KeyRing;
  identities?: AgeIdentities | undefined;
}

export interface VerifyReport extends DownloadFacts {
  manifest: Manifest;
  status: SnapshotStatus;
  /** Which tool read the database (etcdutl preferred, etcdctl 3.4 fallback). */
  tool: SnapshotTool;
  /** The bbolt meta pages, checked without any tool. */
  bbolt: { pageSize: number; txid: string; pages: string };
}

/** Downloads, checks and opens the snapshot, then removes the temporary copy whatever happened. */
export async function verifySnapshot(options: VerifyOptions): Promise<VerifyReport> {
  const dir = await mkdtemp(join(options.tempDir ?? tmpdir(), 'etcd-autobackup-verify-'));
  try {
    return await verifyInto(dir, options);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The verify steps with the snapshot left in `dir/snapshot.db`, for restore to use. */
export async function verifyInto(dir: string, options: VerifyOptions): Promise<VerifyReport & { file: string }> {
  const tool = lookUpTool(options);
  const file = await downloadInto(dir, options);
  const checked = await checkBeside(file, options, tool, (found, signal) => snapshotStatus(found, file, signal));
  return { ...checked.facts, status: checked.value, tool: checked.tool };
}

/** A downloaded snapshot that passed every check but the etcd tool's: hashes, sizes, bbolt meta pages. */
export type CheckedDownload = DownloadFacts & Pick<VerifyReport, 'manifest' | 'bbolt'> & { file: string };

/** The download to `dir/snapshot.db`, unchecked: checkBeside (or checkDownloaded) must follow. */
export async function downloadInto(dir: string, options: VerifyOptions): Promise<string> {
  const file = join(dir, 'snapshot.db');
  await downloadSnapshot({ ...options, dest: file });
  return file;
}

/** The download and the tool-free checks, one after the other (the drill pod runs no tool). */
export async function downloadChecked(dir: string, options: VerifyOptions): Promise<CheckedDownload> {
  return checkDownloaded(await downloadInto(dir, options), options);
}

/** The tool-free checks of a downloaded file: its hash against the trailer and manifest, then its bbolt meta pages. */
export async function checkDownloaded(
  file: string,
  options: Pick<VerifyOptions, 'store' | 'manifest' | 'signal'>,
): Promise<CheckedDownload> {
  const { manifest } = options;
  const facts = await checkSnapshotFile(file, manifest, describe(options.store, manifest), options.signal);
  // Before any tool's verdict: a truncated or non-bbolt file is refused even on a host with neither tool.
  const header = checkBboltHeader(await readHead(file, BBOLT_HEAD_BYTES), facts.dbSize);
  if (!header.ok) {
    throw new IntegrityError(`snapshot ${manifest.id} is not a usable etcd database: ${header.problem}`);
  }
  const bbolt = { pageSize: header.pageSize, txid: String(header.txid), pages: String(header.pages) };
  return { ...facts, manifest, bbolt, file };
}

/**
 * The tool-free checks of a downloaded file beside what needs the etcd tool (`snapshot status`;
 * for restore also the restore itself), all reading the same file: one after the other they were
 * most of a verify's or restore's time. The tool-free verdict wins and stops the tool's work; a
 * missing tool is reported only for a file that passed.
 */
export async function checkBeside<A>(
  file: string,
  options: Pick<VerifyOptions, 'store' | 'manifest' | 'signal'>,
  tool: Promise<SnapshotTool>,
  withTool: (tool: SnapshotTool, signal: AbortSignal) => Promise<A>,
): Promise<{ facts: CheckedDownload; tool: SnapshotTool; value: A }> {
  const [facts, worked] = await whileChecking(
    () => checkDownloaded(file, options),
    (signal) => tool.then(async (found) => ({ found, value: await withTool(found, signal) })),
    options.signal,
  );
  return { facts, tool: worked.found, value: worked.value };
}

/**
 * `check` and `work` side by side, both to succeed: a check failure wins (it is the integrity
 * verdict) and aborts the work through the signal it is given; the work's failure is reported only
 * when the check passed.
 */
export async function whileChecking<C, W>(
  check: (signal: AbortSignal) => Promise<C>,
  work: (signal: AbortSignal) => Promise<W>,
  signal?: AbortSignal,
): Promise<[C, W]> {
  const stop = new AbortController();
  const both = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  const checking = check(both);
  checking.catch(() => stop.abort(new Error('a check beside this work failed')));
  const working = work(both);
  const [checked, worked] = await Promise.allSettled([checking, working]);
  if (checked.status === 'rejected') throw checked.reason;
  if (worked.status === 'rejected') throw worked.reason;
  return [checked.value, worked.value];
}

/**
 * The tool the options name, or a lookup started now so that it runs during the download (it
 * spawns `etcdutl version`); a failed lookup is reported when awaited, after the download's own errors.
 */
export function lookUpTool(options: Pick<VerifyOptions, 'tool' | 'etcdctl' | 'signal'>): Promise<SnapshotTool> {
  const tool = options.tool
    ? Promise.resolve(options.tool)
    : findEtcdTools({ etcdctl: options.etcdctl, ...signalOf(options) });
  // Awaited later, perhaps never (the download failed first): not an unhandled rejection meanwhile.
  tool.catch(() => undefined);
  return tool;
}

function signalOf(options: { signal?: AbortSignal }): { signal?: AbortSignal } {
  return options.signal ? { signal: options.signal } : {};
}

/** The first `bytes` of `file` (fewer when it is shorter). */
export async function readHead(file: string, bytes: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buf, 0, bytes, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
