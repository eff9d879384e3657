/**
 * Restores a verified snapshot into an etcd data directory, all or nothing: etcdutl (or etcdctl
 * 3.4, see etcd-tools.ts) writes into a
 * temporary sibling of the target, which is renamed into place only when everything succeeded.
 * A sibling shares the target's filesystem, so the rename is atomic and no copy is needed; it also
 * works around etcdctl 3.4 refusing a data dir that already exists, even an empty one.
 * Verify's checks all run; its last one, `snapshot status`, runs beside `snapshot restore`
 * rather than before it (both only read the downloaded file), and the tool is looked up during
 * the download.
 */
import { mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { ProgressListener } from '../core/progress.js';
import type { AgeIdentities } from './crypto/age.js';
import type { KeyRing } from './crypto/keys.js';
import type { Manifest } from './manifest.js';
import type { Store } from './stores/store.js';
import { restoreArgv, runTool, type SnapshotTool } from './etcd-tools.js';
import { checkBeside, downloadInto, lookUpTool, snapshotStatus, whileChecking, type VerifyReport } from './verify.js';

/** The data dir cannot be used: it is a file, or a directory with something in it. */
export class RestoreTargetError extends Error {
  override readonly name = 'RestoreTargetError';
}

/** Member settings for `etcdctl snapshot restore`; each left out uses etcdctl's default. */
export interface MemberSettings {
  /** Member name (etcdctl default: "default"). */
  name?: string;
  /** name=peerURL,... of every member of the restored cluster. */
  initialCluster?: string;
  initialClusterToken?: string;
  /** This member's peer URLs, comma-separated. */
  initialAdvertisePeerUrls?: string;
}

export interface RestoreOptions {
  store: Store;
  manifest: Manifest;
  /** Target data dir: must not exist or be empty. */
  dataDir: string;
  etcdctl: string;
  member?: MemberSettings;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** Keys for an encrypted snapshot, decrypted on the way in. */
  keys?: KeyRing;
  /** age identities for a snapshot written to age recipients. */
  identities?: AgeIdentities | undefined;
}

export interface RestoreReport extends VerifyReport {
  dataDir: string;
  member: MemberSettings;
}

export async function restoreSnapshot(options: RestoreOptions): Promise<RestoreReport> {
  const { report, dataDir, member } = await restoreStaged(
    // checkBeside hashes the file (against the trailer and the manifest) beside the restore, at
    // several times the speed of etcdctl 3.4's own check, which was half of its restore time.
    { ...options, skipHashCheck: true },
    async (work, tool, restore) => {
      const file = await downloadInto(work, options);
      // `snapshot status` (the tool reads every key: verify's last check) is a check beside the
      // restore too: nothing is published unless the hash, the bbolt pages and status all passed.
      const checked = await checkBeside(file, options, tool, async (found, signal) => {
        const [status] = await whileChecking(
          (both) => snapshotStatus(found, file, both),
          (both) => restore(found, file, both),
          signal,
        );
        return status;
      });
      const { file: _file, ...facts } = checked.facts;
      return { ...facts, status: checked.value, tool: checked.tool };
    },
  );
  return { ...report, dataDir, member };
}

/** Where and how `restoreStaged` restores; the fields mean what they do in RestoreOptions. */
export interface StagedRestoreTarget {
  dataDir: string;
  etcdctl: string;
  member?: MemberSettings;
  signal?: AbortSignal;
  /**
   * `--skip-hash-check`: for a snapshot without etcd's SHA-256 trailer (a copied db file), or
   * when the caller checks the hash itself beside the restore (ours, restoreSnapshot).
   */
  skipHashCheck?: boolean;
}

/** Restores `file` into the staging data dir with the target's member settings. */
export type StagedRestore = (tool: SnapshotTool, file: string, signal: AbortSignal) => Promise<void>;

/**
 * The restore around any verify step (ours with a manifest, or the original chart's objects in
 * legacy.ts): `stage` downloads into the work dir it is given (the tool is looked up meanwhile),
 * checks the file and runs `restore` on it, in whatever order or overlap its checks allow; only
 * when it succeeded is the data dir renamed into place.
 */
export async function restoreStaged<R>(
  target: StagedRestoreTarget,
  stage: (work: string, tool: Promise<SnapshotTool>, restore: StagedRestore) => Promise<R>,
): Promise<{ report: R; dataDir: string; member: MemberSettings }> {
  const dataDir = resolve(target.dataDir);
  // Checked before the download so a mistake costs nothing, and again before the rename.
  await assertUsableTarget(dataDir);
  const parent = dirname(dataDir);
  await mkdir(parent, { recursive: true });
  const work = await mkdtemp(join(parent, `.${basename(dataDir)}.restoring-`));
  try {
    const staged = join(work, 'data');
    const member = effectiveMember(target.member ?? {});
    const restore: StagedRestore = async (tool, file, signal) => {
      const argv = restoreArgv({
        file,
        dataDir: staged,
        ...member,
        ...(target.skipHashCheck ? { skipHashCheck: true } : {}),
      });
      await runTool(tool, argv, signal);
    };
    const report = await stage(work, lookUpTool(target), restore);
    target.signal?.throwIfAborted();
    await moveIntoPlace(staged, dataDir);
    return { report, dataDir, member };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Moves a finished data dir (a sibling of the target, see above) into place, refusing a target that filled meanwhile. */
export async function moveIntoPlace(staged: string, dataDir: string): Promise<void> {
  await assertUsableTarget(dataDir);
  try {
    // rename(2) replaces an empty directory and fails on a non-empty one: no window to clobber data.
    await rename(staged, dataDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR') {
      throw new RestoreTargetError(
        `${dataDir} changed during the restore and is no longer empty; nothing was restored`,
      );
    }
    throw err;
  }
}

/** The data dir must not exist or be empty (a file or a directory with anything in it is refused). */
export async function assertUsableTarget(dataDir: string): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await stat(dataDir)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isDir)
    throw new RestoreTargetError(`--data-dir ${dataDir} is a file, not a directory; give a new or empty directory`);
  const entries = await readdir(dataDir);
  if (entries.length > 0) {
    throw new RestoreTargetError(
      `--data-dir ${dataDir} is not empty (${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}); ` +
        'restore into a new or empty directory, never over a live etcd data dir',
    );
  }
}

const ETCD_DEFAULT_PEER_URL = 'http://localhost:2380';

/**
 * etcdctl needs the member's own name in --initial-cluster; for a single member that entry follows
 * from the name and peer URLs, so the operator does not have to repeat them.
 */
export function effectiveMember(member: MemberSettings): MemberSettings {
  if (!member.name || member.initialCluster) return member;
  const peers = (member.initialAdvertisePeerUrls ?? ETCD_DEFAULT_PEER_URL)
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  return { ...member, initialCluster: peers.map((u) => `${member.name}=${u}`).join(',') };
}

/** What to do after a restore, as lines for the operator. */
export function restoreNextSteps(report: Pick<RestoreReport, 'dataDir' | 'member'>): string[] {
  const m = report.member;
  const name = m.name ?? 'default';
  const peer = m.initialAdvertisePeerUrls ?? ETCD_DEFAULT_PEER_URL;
  const start = [
    `etcd --name ${name} --data-dir ${report.dataDir}`,
    `--initial-advertise-peer-urls ${peer}`,
    `--initial-cluster ${m.initialCluster ?? `${name}=${peer}`}`,
    '--listen-peer-urls ... --listen-client-urls ... --advertise-client-urls ...',
    '(plus your usual TLS flags)',
  ].join(' \\\n      ');
  return [
    'next steps:',
    '  1. stop etcd and every kube-apiserver that talks to it (kubeadm: move /etc/kubernetes/manifests/etcd.yaml',
    '     and kube-apiserver.yaml out of /etc/kubernetes/manifests, and wait for the containers to stop)',
    '  2. start etcd on the restored data dir; its member settings must match the ones given to restore:',
    `      ${start}`,
    '     kubeadm: point the etcd-data hostPath in etcd.yaml at this directory (or move it to /var/lib/etcd),',
    '     make sure it is owned by the user etcd runs as, then move the manifests back',
    '  3. in a multi-member cluster, restore the same snapshot on every member, each with its own --name and',
    '     --initial-advertise-peer-urls and the same --initial-cluster and --initial-cluster-token',
  ];
}
