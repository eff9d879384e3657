/**
 * A restore drill: prove a stored snapshot restores into an etcd that starts and holds what the
 * source held. Download through the verify path (SHA-256, decryption, decompression, bbolt
 * header), restore with etcdutl or etcdctl (etcd-tools.ts), boot a throwaway etcd on loopback
 * ports, then compare its revision, HashKV and per-prefix key counts with the manifest.
 *
 * A drill never throws for a bad snapshot or a misbehaving etcd: every outcome is a record with
 * checks, written beside the manifest as `<id>.drill.json`. The etcd is always stopped and the
 * scratch directory always removed. The decisions (versions, space, comparisons) are pure
 * functions below the I/O.
 */
import { spawn, type ChildProcess, execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, statfs } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { Config } from '../core/config/index.js';
import { messageOf } from '../core/errors.js';
import type { Metrics } from '../core/metrics.js';
import type { AgeIdentities } from './crypto/age.js';
import { isAge } from './crypto/age-stored.js';
import type { KeyRing } from './crypto/keys.js';
import { restoreArgv, runTool, findEtcdTools, type SnapshotTool } from './etcd-tools.js';
import { hashKV } from './hash-kv.js';
import { compareCounts, countKeys } from './key-counts.js';
import { snapshotsPrefix, type Manifest } from './manifest.js';
import type { Store } from './stores/store.js';
import { verifyInto } from './verify.js';

export const DRILL_FORMAT = 'etcd-autobackup-drill/v1';

export interface DrillCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface DrillRecord {
  format: typeof DRILL_FORMAT;
  id: string;
  cluster: string;
  /** When the drill started (ISO). */
  at: string;
  durationMs: number;
  ok: boolean;
  checks: DrillCheck[];
  /** The etcd binary's version the drill booted, when known. */
  etcdVersion?: string;
  tool?: Pick<SnapshotTool, 'name' | 'version'>;
  /** The first failed check's detail. */
  failure?: string;
  /** `local`, or `job` with the Job's name and run label (drill.executor: job). */
  executor?: { kind: 'local' } | { kind: 'job'; job: string; run: string; etcdImage: string };
}

export interface DrillOptions {
  store: Store;
  manifest: Manifest;
  etcdctl: string;
  /** The etcd to boot (drill.etcd). */
  etcd: string;
  scratchDir: string;
  startTimeoutMs: number;
  freeSpaceMargin: number;
  keys?: KeyRing;
  /** age identities (loadIdentities), for snapshots written to age recipients (docs/encryption.md). */
  identities?: AgeIdentities | undefined;
  log: Logger;
  signal?: AbortSignal;
  now?: () => Date;
  /**
   * Also replay the delta log from an older snapshot to this one's revision and compare HashKV and
   * key counts with this manifest (delta/drill-replay.ts), when the log covers it.
   * @defaultValue false
   */
  replayLog?: boolean;
  /** Called once the throwaway etcd answers, before the checks: for tests that kill it mid-drill. */
  onEtcdReady?: (child: ChildProcess) => Promise<void> | void;
}

export function drillKey(cluster: string, id: string): string {
  return `${snapshotsPrefix(cluster)}${id}.drill.json`;
}

// ---------------------------------------------------------------------------------------------
// Decisions (pure)

/** "3.4.23" -> [3, 4]; undefined when not a version. */
export function majorMinor(version: string): [number, number] | undefined {
  const m = /(\d+)\.(\d+)/.exec(version);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** Whether a local etcd of `local` may open data written by `source`: not older by major.minor. */
export function etcdVersionCheck(local: string, source: string): DrillCheck {
  const l = majorMinor(local);
  const s = majorMinor(source);
  if (!l || !s) return { name: 'etcd-version', ok: false, detail: `cannot compare etcd ${local} with ${source}` };
  const older = l[0] < s[0] || (l[0] === s[0] && l[1] < s[1]);
  return older
    ? {
        name: 'etcd-version',
        ok: false,
        detail: `the local etcd is ${local}, older than the snapshot's etcd ${source}; install etcd ${s.join('.')} or newer (drill.etcd) to drill it`,
      }
    : { name: 'etcd-version', ok: true, detail: `local etcd ${local}, snapshot from ${source}` };
}

/** The scratch dir needs the snapshot file and the restored data dir (about the database each). */
export function spaceCheck(freeBytes: number, dbSize: number, margin: number, dir: string): DrillCheck {
  const needed = 2 * dbSize + margin;
  return freeBytes >= needed
    ? { name: 'free-space', ok: true, detail: `${freeBytes} bytes free in ${dir}, ${needed} needed` }
    : {
        name: 'free-space',
        ok: false,
        detail: `only ${freeBytes} bytes free in ${dir}; a drill of this snapshot needs ${needed} (twice the ${dbSize}-byte database plus drill.freeSpaceMargin): free space or set drill.scratchDir`,
      };
}

/**
 * An age snapshot and no identity to decrypt it: the drill fails here, before any download (or
 * drill Job), whichever executor runs it. A worker holding only the recipients is the intended
 * setup of age (docs/encryption.md), so this is a failed drill, not a config error.
 */
export function ageIdentityCheck(
  manifest: Pick<Manifest, 'id' | 'transforms' | 'age'>,
  hasIdentity: boolean,
): DrillCheck | undefined {
  if (hasIdentity || !isAge(manifest)) return undefined;
  const to = manifest.age ? ` (age-encrypted to ${manifest.age.recipients.join(', ')})` : '';
  return {
    name: 'download',
    ok: false,
    detail: `no age identity: set encryption.identityFiles (a drill identity) or drill elsewhere, docs/encryption.md; snapshot ${manifest.id}${to} cannot be decrypted without one`,
  };
}

/**
 * The restored revision must be the manifest's; when the source was written to during the
 * stream (recorded currentRevision > revision) the snapshot may hold later revisions, so only
 * "not older" can be required.
 */
export function revisionCheck(restored: number, manifest: Manifest): DrillCheck {
  const expected = manifest.etcd.revision;
  const exact = manifest.hashKV === undefined || manifest.hashKV.currentRevision === expected;
  const ok = exact ? restored === expected : restored >= expected;
  return {
    name: 'revision',
    ok,
    detail: `restored revision ${restored}, manifest ${exact ? '' : 'at least '}${expected}`,
  };
}

// ---------------------------------------------------------------------------------------------
// The drill (I/O)

/** A drill record before any check: failed until settleRecord says otherwise. */
export function newDrillRecord(manifest: Manifest, started: Date): DrillRecord {
  return {
    format: DRILL_FORMAT,
    id: manifest.id,
    cluster: manifest.cluster,
    at: started.toISOString(),
    durationMs: 0,
    ok: false,
    checks: [],
  };
}

export async function runDrill(options: DrillOptions): Promise<DrillRecord> {
  const { manifest, log } = options;
  const now = options.now ?? (() => new Date());
  const started = now();
  const record = newDrillRecord(manifest, started);
  const checks = record.checks;
  let work: string | undefined;
  let etcd: RunningEtcd | undefined;
  try {
    await mkdir(options.scratchDir, { recursive: true });
    const fs = await statfs(options.scratchDir);
    if (!push(checks, spaceCheck(fs.bavail * fs.bsize, manifest.dbSize, options.freeSpaceMargin, options.scratchDir)))
      return record;

    const version = await etcdVersion(options.etcd);
    record.etcdVersion = version;
    if (!push(checks, etcdVersionCheck(version, manifest.etcd.version))) return record;
    const noIdentity = ageIdentityCheck(manifest, options.identities !== undefined);
    if (noIdentity) {
      checks.push(noIdentity);
      return record;
    }

    const tool = await findEtcdTools({ etcdctl: options.etcdctl, ...signalOf(options) });
    record.tool = { name: tool.name, version: tool.version };
    const scratch = await mkdtemp(join(options.scratchDir, `${manifest.id}-`));
    work = scratch;
    const verified = await attempt(checks, 'download', () =>
      verifyInto(scratch, { ...options, tool, tempDir: scratch }).then((r) => ({
        value: r,
        detail: `sha256 ${r.sha256} matches, bbolt header ok (${r.bbolt.pages} pages), ${tool.name} ${tool.version} reads revision ${r.status.revision}`,
      })),
    );
    if (!verified) return record;

    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const peer = `http://127.0.0.1:${peerPort}`;
    const dataDir = join(scratch, 'data');
    const restored = await attempt(checks, 'restore', async () => {
      await runTool(
        tool,
        restoreArgv({
          file: verified.file,
          dataDir,
          name: 'drill',
          initialCluster: `drill=${peer}`,
          initialClusterToken: `drill-${manifest.id}`,
          initialAdvertisePeerUrls: peer,
          // verifyInto has just hashed this file against its trailer and the manifest.
          skipHashCheck: true,
        }),
        options.signal,
      );
      return { value: true, detail: `${tool.name} snapshot restore into ${dataDir}` };
    });
    if (!restored) return record;

    etcd = startEtcd(options.etcd, dataDir, clientPort, peer);
    const up = await attempt(checks, 'start', async () => {
      await etcd?.waitReady(options.startTimeoutMs);
      return { value: true, detail: `etcd ${version} answered on 127.0.0.1:${clientPort}` };
    });
    if (!up) return record;
    await options.onEtcdReady?.(etcd.child);

    await checkRestoredEtcd(etcd, manifest, checks);
    if (options.replayLog) {
      const { contentDigest, replayCheck } = await import('./delta/drill-replay.js');
      // The lease-blind view of this snapshot, in case the replay's HashKV differs by leases alone.
      const drilled = manifest.hashKV
        ? await etcd.during(contentDigest(etcd.client, manifest.hashKV.revision)).catch(() => undefined)
        : undefined;
      await etcd.stop();
      etcd = undefined;
      const replayed = await replayCheck(options, drilled);
      checks.push(
        replayed ?? {
          name: 'delta-replay',
          ok: true,
          detail: manifest.hashKV
            ? 'the delta log does not reach this snapshot from an older one; skipped'
            : 'no HashKV recorded in this manifest; skipped',
        },
      );
    }
    return record;
  } catch (err) {
    checks.push({ name: 'drill', ok: false, detail: messageOf(err) });
    return record;
  } finally {
    await etcd?.stop();
    if (work) await rm(work, { recursive: true, force: true });
    record.durationMs = now().getTime() - started.getTime();
    settleRecord(record);
    log[record.ok ? 'info' : 'error'](
      {
        id: manifest.id,
        ok: record.ok,
        durationMs: record.durationMs,
        tool: record.tool?.name,
        failure: record.failure,
      },
      record.ok ? 'drill passed: snapshot restores' : 'drill failed',
    );
  }
}

/**
 * The checks on an etcd booted from the restored snapshot: a linearizable read, the revision,
 * HashKV and per-prefix key counts against the manifest. Shared by the local drill and the drill
 * Job's `drill-check` container (worker/drill-pod.ts).
 */
export async function checkRestoredEtcd(
  running: Pick<RunningEtcd, 'client' | 'during'>,
  manifest: Manifest,
  checks: DrillCheck[],
): Promise<void> {
  const client = running.client;
  const revision = await attempt(checks, 'linearizable-read', async () => {
    // A range without `serializable` goes through the leader's read index: a real quorum read.
    const r = await running.during(client.kv.range({ key: Buffer.from([0]), limit: 1, keys_only: true }));
    return { value: Number(r.header.revision), detail: `quorum read at revision ${r.header.revision}` };
  });
  if (revision === undefined) return;
  push(checks, revisionCheck(revision, manifest));

  if (manifest.hashKV) {
    const expected = manifest.hashKV;
    await attempt(checks, 'hashkv', async () => {
      const h = await running.during(hashKV(client, expected.revision));
      if (h.hash !== expected.hash)
        throw new Error(`HashKV(${expected.revision}) is ${h.hash}, the source's was ${expected.hash}`);
      return { value: true, detail: `HashKV(${expected.revision}) = ${h.hash}, as on the source` };
    });
  } else {
    checks.push({ name: 'hashkv', ok: true, detail: 'not recorded in this manifest (older version); skipped' });
  }
  if (manifest.keyCounts) {
    const expected = manifest.keyCounts;
    await attempt(checks, 'key-counts', async () => {
      const actual = await running.during(countKeys(client, expected.revision));
      const problems = compareCounts(expected, actual);
      if (problems.length > 0) throw new Error(`key counts differ: ${problems.slice(0, 10).join('; ')}`);
      return {
        value: true,
        detail: `${actual.total} keys in ${Object.keys(actual.prefixes).length} prefixes, as on the source`,
      };
    });
  } else {
    checks.push({ name: 'key-counts', ok: true, detail: 'not recorded in this manifest (older version); skipped' });
  }
}

/** Sets `ok` and `failure` from the checks: passed only with checks, all of them ok. */
export function settleRecord(record: DrillRecord): void {
  record.ok = record.checks.length > 0 && record.checks.every((c) => c.ok);
  const failed = record.checks.find((c) => !c.ok);
  if (failed) record.failure = `${failed.name}: ${failed.detail}`;
  else delete record.failure;
}

/** Writes the record beside the manifest. */
export async function saveDrillRecord(store: Store, record: DrillRecord): Promise<void> {
  await store.put(drillKey(record.cluster, record.id), Readable.from([JSON.stringify(record, null, 2)]), {
    contentType: 'application/json',
  });
}

/** The last drill record of `id`, or undefined when it was never drilled (or the record is unreadable). */
export async function readDrillRecord(store: Store, cluster: string, id: string): Promise<DrillRecord | undefined> {
  try {
    const { body } = await store.get(drillKey(cluster, id));
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
    const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Partial<DrillRecord>;
    return parsed.format === DRILL_FORMAT ? (parsed as DrillRecord) : undefined;
  } catch {
    return undefined;
  }
}

export function push(checks: DrillCheck[], check: DrillCheck): boolean {
  checks.push(check);
  return check.ok;
}

export async function attempt<T>(
  checks: DrillCheck[],
  name: string,
  run: () => Promise<{ value: T; detail: string }>,
): Promise<T | undefined> {
  try {
    const { value, detail } = await run();
    checks.push({ name, ok: true, detail });
    return value;
  } catch (err) {
    checks.push({ name, ok: false, detail: messageOf(err) });
    return undefined;
  }
}

function signalOf(options: { signal?: AbortSignal }): { signal?: AbortSignal } {
  return options.signal ? { signal: options.signal } : {};
}

export async function etcdVersion(etcd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(etcd, ['--version'], (err, stdout) => {
      if (err) return reject(new Error(`cannot run ${etcd} --version (drill.etcd): ${err.message}`));
      const m = /etcd Version:\s*v?(\S+)/i.exec(stdout);
      if (!m?.[1]) return reject(new Error(`${etcd} --version printed no version: ${stdout.slice(0, 200)}`));
      resolve(m[1]);
    });
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface RunningEtcd {
  child: ChildProcess;
  client: Etcd3;
  waitReady(timeoutMs: number): Promise<void>;
  /** Races `p` against the process exiting, so a killed etcd fails the check at once and says so. */
  during<T>(p: Promise<T>): Promise<T>;
  stop(): Promise<void>;
}

/** The flags of a drill's one-member throwaway etcd, for a local process and the drill Job's sidecar alike. */
export function drillEtcdArgs(dataDir: string, clientUrl: string, peerUrl: string): string[] {
  return [
    '--name',
    'drill',
    '--data-dir',
    dataDir,
    '--listen-client-urls',
    clientUrl,
    '--advertise-client-urls',
    clientUrl,
    '--listen-peer-urls',
    peerUrl,
    '--initial-advertise-peer-urls',
    peerUrl,
    '--initial-cluster',
    `drill=${peerUrl}`,
    '--log-level',
    'error',
  ];
}

/** A throwaway single-member etcd on loopback (drills, point-in-time replay); `extraArgs` are appended. */
export function startEtcd(
  etcd: string,
  dataDir: string,
  clientPort: number,
  peer: string,
  extraArgs: readonly string[] = [],
): RunningEtcd {
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const child = spawn(etcd, [...drillEtcdArgs(dataDir, endpoint, peer), ...extraArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const exited = new Promise<string>((resolve) => {
    child.once('error', (err) => resolve(`etcd could not be started: ${err.message}`));
    child.once('exit', (code, signal) =>
      resolve(
        `etcd exited (${signal ? `signal ${signal}` : `code ${code}`})${stderr ? `: ${stderr.trim().split('\n').slice(-2).join(' | ')}` : ''}`,
      ),
    );
  });
  let gone = false;
  void exited.then(() => (gone = true));
  const client = new Etcd3({
    hosts: [endpoint],
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5_000 }),
  });
  const during = <T>(p: Promise<T>): Promise<T> =>
    Promise.race([p, exited.then((why) => Promise.reject(new Error(`${why}, during the drill`)))]);
  return {
    child,
    client,
    during,
    async waitReady(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (gone) throw new Error(await exited);
        try {
          await during(client.maintenance.status());
          return;
        } catch (err) {
          if (gone) throw new Error(await exited, { cause: err });
          if (Date.now() > deadline)
            throw new Error(`etcd did not answer within ${timeoutMs} ms (drill.startTimeout): ${messageOf(err)}`, {
              cause: err,
            });
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    },
    async stop() {
      client.close();
      if (!gone) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

/** The drill metrics; kept apart from runDrill so the CLI and the worker record alike. */
export function recordDrillMetrics(
  metrics: Pick<Metrics, 'drillLastSuccess' | 'drillDuration' | 'drills'>,
  record: DrillRecord,
): void {
  metrics.drills.inc({ cluster: record.cluster, result: record.ok ? 'success' : 'failure' });
  metrics.drillDuration.observe({ cluster: record.cluster }, record.durationMs / 1000);
  if (record.ok) metrics.drillLastSuccess.set({ cluster: record.cluster }, Date.parse(record.at) / 1000);
}

/** Drill options from the config. */
export function drillSettings(
  config: Pick<Config, 'drill' | 'etcd'>,
): Pick<DrillOptions, 'etcd' | 'etcdctl' | 'scratchDir' | 'startTimeoutMs' | 'freeSpaceMargin'> {
  return {
    etcd: config.drill.etcd,
    etcdctl: config.etcd.etcdctl,
    scratchDir: config.drill.scratchDir,
    startTimeoutMs: config.drill.startTimeout,
    freeSpaceMargin: config.drill.freeSpaceMargin,
  };
}
