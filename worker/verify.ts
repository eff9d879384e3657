/**
 * Reads a stored snapshot back and proves it is the one that was written: the bytes are
 * decrypted (when encrypted), decompressed and checked against etcd's SHA-256 trailer on the fly,
 * then against the manifest, its bbolt meta pages are checked (bbolt-header.ts), and finally
 * etcdutl or etcdctl (etcd-tools.ts) opens the database. The result is a file
 * `snapshot restore` can use.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { Sha256TrailerVerifier } from './sha256-trailer.js';
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

/** Writes the snapshot of `manifest` to `dest`, failing with an IntegrityError on any mismatch. */
export async function downloadVerified(options: DownloadOptions): Promise<DownloadFacts> {
  const { store, manifest, dest } = options;
  const what = `snapshot ${manifest.id} (${manifest.key} in ${store.location})`;
  const unknown = manifest.transforms.filter((t) => !KNOWN_TRANSFORMS.has(t));
  if (unknown.length > 0) {
    throw new IntegrityError(
      `${what} was written with ${unknown.join(', ')}, which this version cannot read back; use a newer etcd-autobackup`,
    );
  }
  // Before the download, so that a missing key costs nothing.
  const decrypt = decryptStage(manifest, options.keys, what) ?? ageDecryptStage(manifest, options.identities, what);

  const object = await openStoredObject(store, manifest, what);

  type Stage = 'read' | 'decrypt' | 'decompress' | 'verify' | 'write';
  const failures = firstFailure<Stage>();
  const tag = failures.tag;

  const meter = new ByteMeter(options.onProgress);
  meter.total = object.size;
  const stages: NodeJS.ReadWriteStream[] = [meter];
  if (decrypt) stages.push(tag(decrypt, 'decrypt'));
  // The manifest, not the object's name, says how it was compressed (old objects: gzip or none).
  const codec = codecOf(manifest.compression);
  if (codec.decompress) stages.push(tag(codec.decompress(), 'decompress'));
  const verifier = tag(new Sha256TrailerVerifier(), 'verify');
  const counter = new ByteMeter();
  try {
    await pipeline(
      [tag(object.body, 'read'), ...stages, verifier, counter, tag(createWriteStream(dest, { flags: 'wx' }), 'write')],
      {
        ...(options.signal ? { signal: options.signal } : {}),
      },
    );
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
      case 'verify':
        throw new IntegrityError(`${what} is corrupt: ${why}`, { cause: err });
      case 'write':
        throw new Error(`writing the snapshot to ${dest} failed: ${why}`, { cause: err });
      case 'read':
        throw new Error(`reading ${what} failed: ${why}`, { cause: err });
    }
  }

  const { sha256, dbSize } = verifier.result();
  const snapshotSize = counter.bytes;
  if (sha256 !== manifest.sha256) {
    throw new IntegrityError(
      `${what} does not match its manifest: the database hashes to ${sha256} but the manifest says ${manifest.sha256}`,
    );
  }
  if (dbSize !== manifest.dbSize || snapshotSize !== manifest.snapshotSize) {
    throw new IntegrityError(
      `${what} does not match its manifest: ${snapshotSize} snapshot bytes (${dbSize} database) but the manifest says ${manifest.snapshotSize} (${manifest.dbSize})`,
    );
  }
  return { sha256, dbSize, snapshotSize };
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
  const downloaded = await downloadChecked(dir, options);
  const found = await tool;
  const status = await snapshotStatus(found, downloaded.file, options.signal);
  return { ...downloaded, status, tool: found };
}

/** A downloaded snapshot that passed every check but the etcd tool's: hashes, sizes, bbolt meta pages. */
export type CheckedDownload = DownloadFacts & Pick<VerifyReport, 'manifest' | 'bbolt'> & { file: string };

/**
 * The download and the tool-free checks, with the snapshot left in `dir/snapshot.db`; the
 * caller runs `snapshot status` on it (verifyInto), or alongside its restore (restore.ts).
 */
export async function downloadChecked(dir: string, options: VerifyOptions): Promise<CheckedDownload> {
  const file = join(dir, 'snapshot.db');
  const facts = await downloadVerified({ ...options, dest: file });
  // Before any tool: a truncated or non-bbolt file is refused even on a host with neither.
  const header = checkBboltHeader(await readHead(file, BBOLT_HEAD_BYTES), facts.dbSize);
  if (!header.ok) {
    throw new IntegrityError(`snapshot ${options.manifest.id} is not a usable etcd database: ${header.problem}`);
  }
  const bbolt = { pageSize: header.pageSize, txid: String(header.txid), pages: String(header.pages) };
  return { ...facts, manifest: options.manifest, bbolt, file };
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
