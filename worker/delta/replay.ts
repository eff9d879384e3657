/**
 * Point-in-time restore (docs/point-in-time-restore.md): a full snapshot plus the delta log's
 * events after it, replayed into a throwaway etcd so that revisions come out exactly as on the
 * source, then restored into the operator's data dir like any snapshot.
 *
 *   1. verify the chosen snapshot (verify.ts: SHA-256, decryption, bbolt header, snapshot status
 *      gives its real revision) — one taken while etcd was written to may hold a later revision
 *      than its manifest says; when that is past the target the next candidate is used;
 *   2. restore it into a scratch etcd on loopback and boot it;
 *   3. apply the events of every revision after the snapshot's, up to the target, as one etcd
 *      transaction per original revision (its puts and deletes together): each transaction
 *      raises the revision by exactly one, so the scratch revision and every key's create and mod
 *      revision and version come out as on the source. Each transaction's revision is checked.
 *      Leases are not replayed: keys come back without their lease;
 *   4. snapshot the scratch etcd (etcd's SHA-256 trailer checked), check its revision is the
 *      target, and `snapshot restore` it with the operator's member flags.
 *
 * All or nothing, as restore.ts: everything happens in a temporary sibling of the data dir, which
 * is moved into place only at the end; any failure (a segment that fails its SHA-256, a revision
 * the log does not hold, etcd dying) leaves no data dir.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Etcd3, IRequestOp } from 'etcd3';
import type { Logger } from 'pino';
import { IntegrityError, messageOf } from '../../core/errors.js';
import type { AgeIdentities } from '../crypto/age.js';
import type { KeyRing } from '../crypto/keys.js';
import { freePort, startEtcd, type RunningEtcd } from '../drill.js';
import { findEtcdTools, restoreArgv, runTool, type SnapshotTool } from '../etcd-tools.js';
import type { Manifest } from '../manifest.js';
import { assertUsableTarget, effectiveMember, moveIntoPlace, type MemberSettings } from '../restore.js';
import { Sha256TrailerVerifier } from '../sha256-trailer.js';
import { openSnapshotStream, SnapshotMessages } from '../snapshot.js';
import type { Store } from '../stores/store.js';
import { snapshotStatus, verifyInto } from '../verify.js';
import { readSegment } from './segment-read.js';
import type { DeltaEvent } from './segment.js';
import type { RestorePlan, ReplaySource } from './target.js';

export interface ReplayOptions {
  store: Store;
  plan: RestorePlan;
  /** Target data dir: must not exist or be empty. */
  dataDir: string;
  /** etcdctl (etcd.etcdctl); etcdutl is preferred when on PATH (etcd-tools.ts). */
  etcdctl: string;
  /** The etcd binary booted for the replay (drill.etcd). @defaultValue "etcd" */
  etcd?: string;
  /** How long the scratch etcd may take to answer (drill.startTimeout). @defaultValue 30000 */
  startTimeoutMs?: number;
  member?: MemberSettings;
  keys?: KeyRing | undefined;
  identities?: AgeIdentities | undefined;
  signal?: AbortSignal | undefined;
  log: Logger;
  /**
   * Where the scratch etcd keeps its data while the log is replayed (it needs room for the
   * database; tmpfs makes the replay's fsyncs free when the database fits in memory).
   * @defaultValue a temporary sibling of the data dir
   */
  scratchDir?: string;
  /** How often progress is logged during the replay. @defaultValue 5000 */
  progressEveryMs?: number;
  /** Called once the scratch etcd is up, before any event is applied: for tests that delay the replay. */
  onScratchReady?: () => Promise<void>;
  /** Called on each boot of the scratch etcd before its leases are held: for tests that let a lease expire first. */
  beforeHoldingLeases?: (boot: number) => Promise<void>;
  /**
   * Called with the scratch etcd once the log is applied, before it is snapshotted: the drill's
   * replay check compares it with a later snapshot's HashKV here. A rejection fails the replay.
   * @defaultValue none
   */
  inspect?: (client: Etcd3) => Promise<void>;
}

export interface ReplayReport {
  target: number;
  /** The revision of the restored data dir (checked equal to the target). */
  revision: number;
  snapshot: Pick<Manifest, 'id' | 'createdAt' | 'key'>;
  /** The revision the snapshot really held (snapshot status). */
  snapshotRevision: number;
  /** Segments read, each checked against its manifest's SHA-256s. */
  segments: number;
  /** Revisions (transactions) and events applied. */
  revisions: number;
  events: number;
  /** Events whose lease was dropped (leases are not replayed). */
  leasesDropped: number;
  /** Times the scratch etcd was started: more than 1 when a short lease expired before it was held (bootScratch). */
  scratchBoots: number;
  replayMs: number;
  durationMs: number;
  tool: SnapshotTool;
  dataDir: string;
  member: MemberSettings;
}

/**
 * A revision's transaction may hold far more operations than etcd's defaults allow (one
 * DeleteRange of a prefix is an event per key); the scratch etcd is ours, so its limits are raised.
 * It is a single member on loopback: a short election timeout makes it leader in milliseconds
 * instead of the default's one to two seconds.
 */
const SCRATCH_ETCD_ARGS = [
  '--max-txn-ops',
  '1000000',
  '--max-request-bytes',
  String(64 * 1024 * 1024),
  '--heartbeat-interval',
  '10',
  '--election-timeout',
  '100',
];

export async function replayToRevision(options: ReplayOptions): Promise<ReplayReport> {
  const started = Date.now();
  const { plan, log } = options;
  const dataDir = resolve(options.dataDir);
  await assertUsableTarget(dataDir);
  const parent = dirname(dataDir);
  await mkdir(parent, { recursive: true });
  const work = await mkdtemp(join(parent, `.${basename(dataDir)}.replaying-`));
  let etcd: RunningEtcd | undefined;
  let scratchParent: string | undefined;
  try {
    const tool = await findEtcdTools({
      etcdctl: options.etcdctl,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const { source, file, revision: snapshotRevision } = await chooseSource(work, tool, options);
    log.info(
      {
        snapshot: source.snapshot.id,
        snapshotRevision,
        target: plan.target,
        segments: source.segments.length,
        revisions: plan.target - snapshotRevision,
      },
      'replay: snapshot verified, starting the scratch etcd',
    );

    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const peer = `http://127.0.0.1:${peerPort}`;
    if (options.scratchDir) {
      await mkdir(options.scratchDir, { recursive: true });
      scratchParent = await mkdtemp(join(options.scratchDir, 'etcd-autobackup-replay-'));
    }
    const scratch = join(scratchParent ?? work, 'scratch');
    const booted = await bootScratch(tool, file, scratch, { clientPort, peer, snapshotRevision }, source, options);
    etcd = booted.etcd;
    await rm(file, { force: true });

    await options.onScratchReady?.();
    const replayStarted = Date.now();
    const applied = await applyEvents(etcd, source, snapshotRevision, options).finally(booted.releaseLeases);
    const replayMs = Date.now() - replayStarted;
    log.info(
      { ...applied, replayMs, eventsPerSecond: Math.round((applied.events * 1000) / Math.max(1, replayMs)) },
      'replay: events applied, taking the snapshot of the scratch etcd',
    );

    const inspect = options.inspect;
    if (inspect) await etcd.during(inspect(etcd.client));

    const replayed = join(work, 'replayed.db');
    await saveSnapshot(etcd, replayed, options.signal);
    await etcd.stop();
    etcd = undefined;
    const status = await snapshotStatus(tool, replayed, options.signal);
    if (status.revision !== plan.target) {
      throw new IntegrityError(
        `the replayed snapshot is at revision ${status.revision}, not the target ${plan.target}`,
      );
    }

    const member = effectiveMember(options.member ?? {});
    const staged = join(work, 'data');
    await runTool(tool, restoreArgv({ file: replayed, dataDir: staged, ...member }), options.signal);
    options.signal?.throwIfAborted();
    await moveIntoPlace(staged, dataDir);
    return {
      target: plan.target,
      revision: status.revision,
      snapshot: { id: source.snapshot.id, createdAt: source.snapshot.createdAt, key: source.snapshot.key },
      snapshotRevision,
      ...applied,
      scratchBoots: booted.boots,
      replayMs,
      durationMs: Date.now() - started,
      tool,
      dataDir,
      member,
    };
  } finally {
    await etcd?.stop();
    await rm(work, { recursive: true, force: true });
    if (scratchParent) await rm(scratchParent, { recursive: true, force: true });
  }
}

/** The first source whose snapshot really is at or below the target, downloaded and verified. */
async function chooseSource(
  work: string,
  tool: SnapshotTool,
  options: ReplayOptions,
): Promise<{ source: ReplaySource; file: string; revision: number }> {
  const passed: string[] = [];
  for (const [i, source] of options.plan.sources.entries()) {
    const dir = join(work, `snapshot-${i}`);
    await mkdir(dir);
    const report = await verifyInto(dir, {
      store: options.store,
      manifest: source.snapshot,
      etcdctl: options.etcdctl,
      tool,
      tempDir: dir,
      ...(options.signal ? { signal: options.signal } : {}),
      keys: options.keys,
      identities: options.identities,
    });
    // A database no key was ever written to has no revision in it (status says 0); etcd boots it at 1.
    const revision = Math.max(1, report.status.revision);
    if (revision <= options.plan.target) return { source, file: report.file, revision };
    passed.push(`${source.snapshot.id} holds revision ${revision}`);
    options.log.info(
      { snapshot: source.snapshot.id, revision, target: options.plan.target },
      'replay: snapshot holds revisions past the target (written to during its stream); trying an older one',
    );
    await rm(dir, { recursive: true, force: true });
  }
  throw new IntegrityError(
    `no snapshot at or below revision ${options.plan.target} to replay from: ${passed.join('; ')} (each was written to during its stream)`,
  );
}

/** How often bootScratch starts the scratch etcd again when a lease expired before it could be held. */
const SCRATCH_BOOTS = 3;

/**
 * Restores the snapshot into a scratch etcd and boots it, with every lease in it kept alive. etcd
 * starts a lease's TTL when the member becomes leader, so a short lease (kube-apiserver's 15 s
 * master leases; 5 s in the tests) can expire on a slow machine before the first keep-alive
 * reaches it; its revocation is a revision the log does not hold, and the replay would fail.
 * The revision is read once the leases are held: when it moved, the scratch etcd starts again
 * from the same verified file.
 */
async function bootScratch(
  tool: SnapshotTool,
  file: string,
  scratch: string,
  at: { clientPort: number; peer: string; snapshotRevision: number },
  source: ReplaySource,
  options: ReplayOptions,
): Promise<{ etcd: RunningEtcd; releaseLeases: () => void; boots: number }> {
  for (let boot = 1; ; boot++) {
    await rm(scratch, { recursive: true, force: true });
    await runTool(
      tool,
      restoreArgv({
        file,
        dataDir: scratch,
        name: 'drill',
        initialCluster: `drill=${at.peer}`,
        initialClusterToken: `replay-${source.snapshot.id}`,
        initialAdvertisePeerUrls: at.peer,
        // The file was hashed by verifyInto (chooseSource).
        skipHashCheck: true,
      }),
      options.signal,
    );
    const etcd = startEtcd(options.etcd ?? 'etcd', scratch, at.clientPort, at.peer, SCRATCH_ETCD_ARGS);
    let releaseLeases: (() => void) | undefined;
    try {
      await etcd.waitReady(options.startTimeoutMs ?? 30_000);
      await options.beforeHoldingLeases?.(boot);
      releaseLeases = await holdLeases(etcd);
      const booted = Number(
        (await etcd.during(etcd.client.kv.range({ key: Buffer.from([0]), limit: 1, keys_only: true }))).header.revision,
      );
      if (booted === at.snapshotRevision) return { etcd, releaseLeases, boots: boot };
      const why =
        booted > at.snapshotRevision ? ' (a lease in the snapshot expired before the replay could keep it alive)' : '';
      if (booted < at.snapshotRevision || boot >= SCRATCH_BOOTS) {
        throw new IntegrityError(
          `the scratch etcd restored from snapshot ${source.snapshot.id} is at revision ${booted}, but snapshot status said ${at.snapshotRevision}${why}${boot > 1 ? ` after ${boot} boots` : ''}`,
        );
      }
      options.log.warn(
        { snapshot: source.snapshot.id, booted, snapshotRevision: at.snapshotRevision, boot },
        'replay: a lease in the snapshot expired before the scratch etcd could hold it; starting it again',
      );
    } catch (err) {
      releaseLeases?.();
      await etcd.stop();
      throw err;
    }
    releaseLeases();
    await etcd.stop();
  }
}

interface Applied {
  segments: number;
  revisions: number;
  events: number;
  leasesDropped: number;
}

/** Applies every revision after `from` up to the plan's target, one transaction each. */
async function applyEvents(etcd: RunningEtcd, source: ReplaySource, from: number, options: ReplayOptions) {
  const target = options.plan.target;
  const applied: Applied = { segments: 0, revisions: 0, events: 0, leasesDropped: 0 };
  let current = from;
  let batch: DeltaEvent[] = [];
  let lastLog = Date.now();
  const every = options.progressEveryMs ?? 5_000;

  const commit = async (where: string) => {
    const revision = batch[0]?.revision;
    if (revision === undefined) return;
    if (revision !== current + 1) {
      throw new IntegrityError(
        `${where}: the log jumps from revision ${current} to ${revision}; revisions ${current + 1}..${revision - 1} are missing`,
      );
    }
    const ops: IRequestOp[] = batch.map((e) =>
      e.type === 'put' ? { request_put: { key: e.key, value: e.value } } : { request_delete_range: { key: e.key } },
    );
    let got: number;
    try {
      got = Number((await etcd.during(etcd.client.kv.txn({ compare: [], success: ops, failure: [] }))).header.revision);
    } catch (err) {
      throw new Error(`replaying revision ${revision} (${batch.length} events, ${where}) failed: ${messageOf(err)}`, {
        cause: err,
      });
    }
    if (got !== revision) {
      throw new IntegrityError(
        `replaying revision ${revision} (${where}) gave revision ${got}: the log does not hold that revision's changes as etcd made them`,
      );
    }
    current = revision;
    applied.revisions++;
    applied.events += batch.length;
    for (const e of batch) if (e.lease !== '0') applied.leasesDropped++;
    batch = [];
    if (Date.now() - lastLog >= every) {
      lastLog = Date.now();
      options.log.info({ revision: current, target, events: applied.events }, 'replay: progress');
    }
  };

  for (const segment of source.segments) {
    if (current >= target) break;
    const where = `delta segment ${segment.firstRevision}..${segment.lastRevision}`;
    for await (const event of readSegment({
      store: options.store,
      manifest: segment,
      keys: options.keys,
      identities: options.identities,
      signal: options.signal,
    })) {
      // The whole segment is read even past the target, so its SHA-256s are checked before anything is kept.
      if (event.revision <= current || event.revision > target) continue;
      if (batch.length > 0 && event.revision !== batch[0]?.revision) await commit(where);
      batch.push(event);
    }
    await commit(where);
    applied.segments++;
  }
  if (current !== target) {
    throw new IntegrityError(`the log's segments end at revision ${current}, before the target ${target}`);
  }
  return applied;
}

/** The scratch etcd's snapshot, its SHA-256 trailer checked on the way to disk. */
async function saveSnapshot(etcd: RunningEtcd, file: string, signal: AbortSignal | undefined): Promise<void> {
  const stream = await openSnapshotStream(etcd.client);
  await pipeline(
    [stream, new SnapshotMessages(), new Sha256TrailerVerifier(), createWriteStream(file, { flags: 'wx' })],
    signal ? { signal } : {},
  );
}

/**
 * The snapshot's leases come back with it, and the scratch etcd's lessor expires them after their
 * TTL: an expiry deletes the keys attached, which is a revision the log does not hold, and the
 * replay would no longer line up (kube-apiserver's endpoint leases live 15 s). They are kept alive
 * until the events are applied; the restored data dir keeps them, as any snapshot restore does.
 * Returns the function that stops the keep-alives.
 */
async function holdLeases(etcd: RunningEtcd): Promise<() => void> {
  const { leases } = await etcd.during(etcd.client.leaseClient.leaseLeases());
  if (leases.length === 0) return () => undefined;
  const stream = await etcd.client.leaseClient.leaseKeepAlive();
  const waiting = new Set(leases.map((l) => String(l.ID)));
  let answered: () => void = () => undefined;
  const allAnswered = new Promise<void>((resolve) => (answered = resolve));
  stream.on('data', (res: { ID: string | number }) => {
    waiting.delete(String(res.ID));
    if (waiting.size === 0) answered();
  });
  // A broken stream shows as a lease expiring, which the replay reports as a revision mismatch.
  stream.on('error', () => answered());
  const renew = () => {
    for (const l of leases) stream.write({ ID: l.ID });
  };
  renew();
  // Held once etcd answered each keep-alive (the caller then checks no lease expired before);
  // a lease that never answers is bounded by the wait, and shows in that check.
  await etcd.during(Promise.race([allAnswered, new Promise<void>((r) => setTimeout(r, 5_000).unref())]));
  // etcd's shortest lease TTL is 1.5 election timeouts of the source (1.5 s at its defaults).
  const timer = setInterval(renew, 500);
  return () => {
    clearInterval(timer);
    stream.end();
  };
}
