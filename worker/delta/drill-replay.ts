/**
 * The drill's replay check (docs/drills.md): proves the delta log reproduces etcd's state exactly.
 * For a drilled snapshot S2 whose manifest records HashKV at revision R2, the log is replayed from
 * an older kept snapshot S1 up to R2 in a scratch etcd (replay.ts), and the replayed etcd's
 * HashKV(R2) and per-prefix key counts must equal what S2 recorded on the source. A segment whose
 * events differ from what etcd did (even one re-published with a matching manifest) fails it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { messageOf } from '../../core/errors.js';
import type { DrillCheck, DrillOptions } from '../drill.js';
import { hashKV } from '../hash-kv.js';
import { compareCounts, countKeys } from '../key-counts.js';
import { readLogState } from './point-in-time.js';
import { replayToRevision } from './replay.js';
import { planRestore } from './target.js';
import type { RestorePlan } from './target.js';

/** Which older snapshot and segments reach the manifest's HashKV revision; pure. */
export function replayPlanFor(target: number, all: RestorePlan | undefined, drilled: string): RestorePlan | undefined {
  if (!all) return undefined;
  const sources = all.sources.filter((s) => s.snapshot.id !== drilled && s.segments.length > 0);
  return sources.length > 0 ? { target, sources } : undefined;
}

/**
 * The `delta-replay` check, or undefined when it cannot apply: the manifest records no HashKV, or
 * no older snapshot plus log reaches its revision. Never throws: a failure is a failed check.
 */
export async function replayCheck(options: DrillOptions): Promise<DrillCheck | undefined> {
  const { manifest, store, log } = options;
  const expected = manifest.hashKV;
  if (!expected) return undefined;
  const name = 'delta-replay';
  let plan: RestorePlan | undefined;
  try {
    const state = await readLogState(store, manifest.cluster, {
      keys: options.keys,
      identities: options.identities,
      signal: options.signal,
    });
    let all: RestorePlan | undefined;
    try {
      all = planRestore(expected.revision, state.snapshots, state.chains, state.gaps);
    } catch {
      all = undefined; // not restorable from the log: nothing to check
    }
    plan = replayPlanFor(expected.revision, all, manifest.id);
  } catch (err) {
    return { name, ok: false, detail: `reading the delta log failed: ${messageOf(err)}` };
  }
  if (!plan) return undefined;
  const work = await mkdtemp(join(options.scratchDir, `${manifest.id}-replay-`));
  try {
    let replayed: { hash: number; counts: string[] } | undefined;
    const report = await replayToRevision({
      store,
      plan,
      dataDir: join(work, 'restored'),
      etcdctl: options.etcdctl,
      etcd: options.etcd,
      startTimeoutMs: options.startTimeoutMs,
      keys: options.keys,
      identities: options.identities,
      signal: options.signal,
      log,
      inspect: async (client) => {
        const h = await hashKV(client, expected.revision);
        const counts = manifest.keyCounts
          ? compareCounts(manifest.keyCounts, await countKeys(client, manifest.keyCounts.revision))
          : [];
        replayed = { hash: h.hash, counts };
      },
    });
    if (!replayed) throw new Error('the replayed etcd was not inspected');
    const start = `snapshot ${report.snapshot.id} (revision ${report.snapshotRevision}) + ${report.segments} delta segments (${report.events} events) replayed to revision ${expected.revision}`;
    if (replayed.hash !== expected.hash) {
      // HashKV hashes every revision's key-values up to the revision, lease ids included, and the
      // log does not replay leases (docs/delta-log.md): any leased put in the range changes it.
      const leases =
        report.leasesDropped > 0
          ? `; ${report.leasesDropped} replayed events carried a lease, which replay drops and HashKV covers, so the hashes cannot match`
          : '';
      return {
        name,
        ok: false,
        detail: `${start}: HashKV ${replayed.hash}, but snapshot ${manifest.id} recorded ${expected.hash} on the source: the log does not reproduce etcd's state${leases}`,
      };
    }
    if (replayed.counts.length > 0) {
      return { name, ok: false, detail: `${start}: key counts differ: ${replayed.counts.slice(0, 10).join('; ')}` };
    }
    return {
      name,
      ok: true,
      detail: `${start}: HashKV ${expected.hash}${manifest.keyCounts ? ' and key counts' : ''} as snapshot ${manifest.id} recorded on the source`,
    };
  } catch (err) {
    return { name, ok: false, detail: `replaying the log failed: ${messageOf(err)}` };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
