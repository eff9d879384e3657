/**
 * The two steps of a drill Job's pod (drill.executor: job; worker/drill-job.ts builds the pod) that
 * run in this project's image; the restore and the etcd between them run in the upstream etcd
 * image, which has no shell, so the steps meet only through files in the scratch emptyDir:
 *
 * - `drill-prepare` downloads the snapshot through the verify path (SHA-256, decryption,
 *   decompression, bbolt meta pages) to `<scratch>/snapshot.db` and writes `<scratch>/drill.json`:
 *   the manifest (the expectations) and the checks so far. On failure it stores a failed drill
 *   record itself and exits 1, so the pod stops before the restore.
 * - `drill-check` waits for the etcd sidecar, runs the same checks as a local drill
 *   (checkRestoredEtcd) and stores the drill record, as a local drill does.
 */
import { readFile, rename, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { messageOf } from '../core/errors.js';
import type { AgeIdentities } from './crypto/age.js';
import type { KeyRing } from './crypto/keys.js';
import {
  ageIdentityCheck,
  attempt,
  checkRestoredEtcd,
  newDrillRecord,
  push,
  saveDrillRecord,
  settleRecord,
  spaceCheck,
  type DrillCheck,
  type DrillRecord,
} from './drill.js';
import { manifestSchema, type Manifest } from './manifest.js';
import type { Store } from './stores/store.js';
import { downloadChecked } from './verify.js';

export const SNAPSHOT_FILE = 'snapshot.db';
const STATE_FILE = 'drill.json';

/** What drill-prepare hands to drill-check through the scratch volume. */
interface PodState {
  manifest: Manifest;
  record: DrillRecord;
}

export interface PrepareOptions {
  store: Store;
  manifest: Manifest;
  scratch: string;
  /** The Job's run label, recorded so the worker reads back this run's record and no other. */
  run: string;
  job: string;
  etcdImage: string;
  freeSpaceMargin: number;
  keys?: KeyRing;
  identities?: AgeIdentities | undefined;
  /**
   * Why the pod could not read the configured key or identity files (a Secret not mounted at the
   * worker's path): the drill fails with it, recorded, instead of the step dying without a record.
   */
  keysFailed?: string;
  log: Logger;
  now?: () => Date;
}

/** drill-prepare: the download; true when the restore may go on. */
export async function prepareDrill(options: PrepareOptions): Promise<DrillRecord> {
  const { manifest, scratch } = options;
  const now = options.now ?? (() => new Date());
  const started = now();
  const record: DrillRecord = {
    ...newDrillRecord(manifest, started),
    executor: { kind: 'job', job: options.job, run: options.run, etcdImage: options.etcdImage },
  };
  const checks = record.checks;
  try {
    const fs = await statfs(scratch);
    const blocked: DrillCheck | undefined =
      options.keysFailed !== undefined
        ? {
            name: 'download',
            ok: false,
            detail: `the drill pod cannot read its keys: ${options.keysFailed} (drill.job.secretMounts mounts the worker's key Secrets at the worker's paths; docs/drills.md)`,
          }
        : ageIdentityCheck(manifest, options.identities !== undefined);
    const room = push(checks, spaceCheck(fs.bavail * fs.bsize, manifest.dbSize, options.freeSpaceMargin, scratch));
    if (room && blocked) {
      checks.push(blocked);
    } else if (room) {
      await attempt(checks, 'download', async () => {
        const r = await downloadChecked(scratch, { ...options, etcdctl: 'etcdctl', tempDir: scratch });
        if (r.file !== join(scratch, SNAPSHOT_FILE)) await rename(r.file, join(scratch, SNAPSHOT_FILE));
        return {
          value: true,
          detail: `sha256 ${r.sha256} matches, bbolt header ok (${r.bbolt.pages} pages); restored by the etcd image next`,
        };
      });
    }
  } catch (err) {
    checks.push({ name: 'drill', ok: false, detail: messageOf(err) });
  }
  record.durationMs = now().getTime() - started.getTime();
  settleRecord(record);
  if (!record.ok) {
    await rm(join(scratch, SNAPSHOT_FILE), { force: true });
    await saveDrillRecord(options.store, record);
  } else {
    const state: PodState = { manifest, record };
    await writeFile(join(scratch, STATE_FILE), JSON.stringify(state));
  }
  return record;
}

export interface CheckOptions {
  store: Store;
  scratch: string;
  /** The sidecar etcd's client URL (loopback in the pod). */
  endpoint: string;
  startTimeoutMs: number;
  /** etcd's version as the Job was built for it (the image tag's), recorded. */
  etcdVersion: string;
  log: Logger;
  now?: () => Date;
}

/** drill-check: the checks against the sidecar etcd; the record is stored whatever happened. */
export async function checkDrill(options: CheckOptions): Promise<DrillRecord> {
  const now = options.now ?? (() => new Date());
  const state = await readState(options.scratch);
  const { manifest, record } = state;
  const checks: DrillCheck[] = record.checks;
  const began = Date.parse(record.at);
  record.etcdVersion = options.etcdVersion;
  const client = new Etcd3({
    hosts: [options.endpoint],
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5_000 }),
  });
  try {
    // The restore ran in the init container before this one: its data dir is there or the pod stopped.
    push(checks, {
      name: 'restore',
      ok: true,
      detail: `snapshot restore by the etcd ${options.etcdVersion} image's tool (init container)`,
    });
    const up = await attempt(checks, 'start', async () => {
      await waitAnswering(client, options.startTimeoutMs);
      return { value: true, detail: `etcd ${options.etcdVersion} (sidecar) answered on ${options.endpoint}` };
    });
    if (up) await checkRestoredEtcd({ client, during: (p) => p }, manifest, checks);
  } catch (err) {
    checks.push({ name: 'drill', ok: false, detail: messageOf(err) });
  } finally {
    client.close();
  }
  record.durationMs = now().getTime() - began;
  settleRecord(record);
  await saveDrillRecord(options.store, record);
  await rm(join(options.scratch, SNAPSHOT_FILE), { force: true });
  options.log[record.ok ? 'info' : 'error'](
    { id: manifest.id, ok: record.ok, failure: record.failure },
    record.ok ? 'drill passed: snapshot restores' : 'drill failed',
  );
  return record;
}

async function readState(scratch: string): Promise<PodState> {
  const text = await readFile(join(scratch, STATE_FILE), 'utf8').catch((err: unknown) => {
    throw new Error(`no ${STATE_FILE} in ${scratch}: did drill-prepare run in this pod? (${messageOf(err)})`);
  });
  const parsed = JSON.parse(text) as { manifest: unknown; record: DrillRecord };
  return { manifest: manifestSchema.parse(parsed.manifest), record: parsed.record };
}

async function waitAnswering(client: Etcd3, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await client.maintenance.status();
      return;
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`etcd did not answer within ${timeoutMs} ms (drill.startTimeout): ${messageOf(err)}`, {
          cause: err,
        });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
