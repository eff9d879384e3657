/**
 * One backup, end to end: choose a member, stream its snapshot through verify -> compress ->
 * encrypt -> store, then publish the manifest. Nothing is visible in the store unless every stage succeeded.
 */
import { Readable, PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Config } from '../core/config/index.js';
import type { Cause } from '../core/cause.js';
import { messageOf, SnapshotError, type SnapshotStage } from '../core/errors.js';
import { ByteMeter, type ProgressListener } from '../core/progress.js';
import { TOOL } from '../core/version.js';
import { chooseMember } from './etcd-members.js';
import { firstFailure } from './first-failure.js';
import { hashKV } from './hash-kv.js';
import { countKeys } from './key-counts.js';
import { manifestKey, newSnapshotId, objectKey, MANIFEST_FORMAT, type Manifest } from './manifest.js';
import { openSnapshotStream, SnapshotMessages } from './snapshot.js';
import { Sha256TrailerVerifier } from './sha256-trailer.js';
import { prepareStoreStages } from './store-stages.js';
import type { Store } from './stores/store.js';

export interface BackupOptions {
  /** Without `encryption` (or without its keyFile) snapshots are stored unencrypted. */
  config: Pick<Config, 'cluster' | 'etcd' | 'snapshot'> & Partial<Pick<Config, 'encryption'>>;
  store: Store;
  log: Logger;
  /** Why this snapshot is taken; recorded in the manifest. */
  cause: Cause;
  /** Cancels the snapshot; nothing is published. */
  signal?: AbortSignal;
  /** Progress of the bytes read from etcd. */
  onProgress?: ProgressListener;
  /** Clock, for tests. */
  now?: () => Date;
}

export async function takeBackup(options: BackupOptions): Promise<Manifest> {
  const { config, store, log, cause } = options;
  const now = options.now ?? (() => new Date());
  const started = now();
  const timeout = AbortSignal.timeout(config.snapshot.timeout);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  // Before etcd is touched: an unreadable key file is a configuration error, not a failed snapshot.
  const prepared = await prepareStoreStages({ config });

  const chosen = await chooseMember(config.etcd);
  const member = chosen.status;
  for (const u of chosen.unreachable) log.warn({ endpoint: u.endpoint, error: u.error }, 'etcd member skipped');
  log.info(
    {
      endpoint: member.endpoint,
      memberId: member.memberId,
      leader: member.isLeader,
      revision: member.revision,
      dbSize: member.dbSize,
    },
    'snapshot starting',
  );

  try {
    const failures = firstFailure<SnapshotStage>();
    const tag = failures.tag;
    let source: Readable;
    try {
      source = tag(await openSnapshotStream(chosen.client), 'stream');
    } catch (err) {
      throw new SnapshotError('stream', `cannot start the snapshot on ${member.endpoint}: ${messageOf(err)}`, {
        cause: err,
      });
    }
    // Only now: the zstd child must not be left running when the stream could not start.
    const after = prepared.open(tag);
    const id = newSnapshotId(started, member.revision);
    const key = objectKey(config.cluster, id, config.snapshot.compression) + after.suffix;
    const meter = new ByteMeter(options.onProgress);
    const messages = tag(new SnapshotMessages((total) => (meter.total = total)), 'stream');
    const verifier = tag(new Sha256TrailerVerifier(), 'verify');
    const stored = new ByteMeter();
    const body = tag(new PassThrough(), 'upload');
    const transforms = ['verify-sha256', ...after.transforms];
    const stages: NodeJS.ReadWriteStream[] = [messages, meter, verifier, ...after.stages];

    const flowing = pipeline([source, ...stages, stored, body], { signal });
    const uploading = store.put(key, body, { signal, contentType: 'application/octet-stream' });
    const [flow, upload] = await Promise.allSettled([flowing, uploading]);
    if (flow.status === 'rejected' || upload.status === 'rejected') {
      throw failure(signal, config.snapshot.timeout, failures.origin, flow, upload, member.endpoint);
    }

    const { sha256, dbSize } = verifier.result();
    const finished = now();
    const drillFacts = await sourceFacts(chosen.client, member.revision, log);
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      id,
      cluster: config.cluster,
      key,
      createdAt: started.toISOString(),
      durationMs: finished.getTime() - started.getTime(),
      etcd: {
        endpoint: member.endpoint,
        memberId: member.memberId,
        clusterId: member.clusterId,
        isLeader: member.isLeader,
        version: member.version,
        revision: member.revision,
      },
      dbSize,
      snapshotSize: meter.bytes,
      storedSize: upload.value.size,
      sha256,
      compression: config.snapshot.compression,
      transforms,
      ...(after.encryption ? { encryption: after.encryption } : {}),
      // The stored bytes' hash lets verify check an age object without its (offline) identity.
      ...(after.age && after.storedHash ? { age: after.age, storedSha256: after.storedHash.digest() } : {}),
      ...drillFacts,
      cause,
      tool: TOOL,
    };
    try {
      await store.put(manifestKey(config.cluster, id), Readable.from([JSON.stringify(manifest, null, 2)]), {
        contentType: 'application/json',
      });
    } catch (err) {
      // Without its manifest the object is invisible; remove it so it does not linger.
      await store.delete(key).catch(() => undefined);
      throw new SnapshotError('publish', `writing the manifest to ${store.location} failed: ${messageOf(err)}`, {
        cause: err,
      });
    }
    log.info(
      { id, key, revision: member.revision, dbSize, storedSize: manifest.storedSize, durationMs: manifest.durationMs },
      'snapshot published',
    );
    return manifest;
  } finally {
    chosen.client.close();
  }
}

/**
 * What a drill compares the restored etcd with (drill.ts). Taken after the stream so it costs the
 * snapshot nothing; a failure only leaves the manifest without them (drills then use the other checks).
 */
async function sourceFacts(
  client: Etcd3,
  revision: number,
  log: Logger,
): Promise<Pick<Manifest, 'hashKV' | 'keyCounts'>> {
  try {
    const h = await hashKV(client, revision);
    const keyCounts = await countKeys(client, revision);
    return { hashKV: { revision, ...h }, keyCounts };
  } catch (err) {
    log.warn(
      { err: messageOf(err) },
      'recording HashKV and key counts failed; drills of this snapshot skip those checks',
    );
    return {};
  }
}

function failure(
  signal: AbortSignal,
  timeoutMs: number,
  origin: { stage: SnapshotStage; err: unknown } | undefined,
  flow: PromiseSettledResult<unknown>,
  upload: PromiseSettledResult<unknown>,
  endpoint: string,
): SnapshotError {
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    const timedOut = reason instanceof DOMException && reason.name === 'TimeoutError';
    return new SnapshotError(
      'stream',
      timedOut
        ? `timed out after ${timeoutMs} ms (snapshot.timeout); nothing was published`
        : `aborted (${messageOf(reason)}); nothing was published`,
      {
        cause: reason,
      },
    );
  }
  const stage = origin?.stage ?? (upload.status === 'rejected' ? 'upload' : 'stream');
  const err: unknown =
    origin?.err ??
    (upload.status === 'rejected' ? upload.reason : flow.status === 'rejected' ? flow.reason : undefined);
  const where: Record<SnapshotStage, string> = {
    connect: `connecting to ${endpoint}`,
    stream: `reading the snapshot from ${endpoint}`,
    compress: 'compressing the snapshot',
    encrypt: 'encrypting the snapshot',
    verify: 'verifying the snapshot',
    upload: 'writing to the store',
    publish: 'publishing the manifest',
    kubernetes: 'a Kubernetes API call',
    job: 'the snapshot Job',
  };
  return new SnapshotError(stage, `${where[stage]} failed: ${messageOf(err)}; nothing was published`, { cause: err });
}
