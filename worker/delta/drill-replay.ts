/**
 * The drill's replay check (docs/drills.md): proves the delta log reproduces etcd's state exactly.
 * For a drilled snapshot S2 whose manifest records HashKV at revision R2, the log is replayed from
 * an older kept snapshot S1 up to R2 in a scratch etcd (replay.ts), and the replayed etcd's
 * HashKV(R2) and per-prefix key counts must equal what S2 recorded on the source. A segment whose
 * events differ from what etcd did (even one re-published with a matching manifest) fails it.
 *
 * HashKV covers lease ids and replay drops leases (docs/delta-log.md), so on a cluster that writes
 * leased keys (Kubernetes Events and endpoint leases) the hashes cannot match. Then the verdict is a
 * lease-blind one: every key's value, create and mod revision and version at R2, digested on the
 * replayed etcd and on the drilled snapshot's own etcd, must be equal.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
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

/** What the keyspace holds at `revision`, leases left out: a SHA-256 over every key in order and its count. */
export interface ContentDigest {
  revision: number;
  keys: number;
  sha256: string;
}

const PAGE = 1000;

/** Pages through the whole keyspace as of `revision` (a historical read: later expiries do not matter). */
export async function contentDigest(client: Etcd3, revision: number): Promise<ContentDigest> {
  const hash = createHash('sha256');
  let from = Buffer.from([0]);
  let keys = 0;
  for (;;) {
    const r = await client.kv.range({ key: from, range_end: Buffer.from([0]), revision, limit: PAGE });
    for (const kv of r.kvs) {
      for (const part of [kv.key, kv.value]) {
        const length = Buffer.alloc(4);
        length.writeUInt32BE(part.length);
        hash.update(length).update(part);
      }
      hash.update(`${kv.create_revision}/${kv.mod_revision}/${kv.version}\n`);
    }
    keys += r.kvs.length;
    const last = r.kvs.at(-1);
    if (!r.more || !last) break;
    from = Buffer.concat([last.key, Buffer.from([0])]);
  }
  return { revision, keys, sha256: hash.digest('hex') };
}

/** The replayed etcd against the drilled snapshot; pure. */
export function replayVerdict(input: {
  hashMatches: boolean;
  leasesDropped: number;
  replayed?: ContentDigest;
  drilled?: ContentDigest;
}): { ok: boolean; by: 'hashkv' | 'content' } {
  if (input.hashMatches) return { ok: true, by: 'hashkv' };
  // Only the leases replay drops can explain a HashKV difference on a log that is right.
  if (input.leasesDropped === 0 || !input.replayed || !input.drilled) return { ok: false, by: 'hashkv' };
  const same =
    input.replayed.revision === input.drilled.revision &&
    input.replayed.keys === input.drilled.keys &&
    input.replayed.sha256 === input.drilled.sha256;
  return { ok: same, by: 'content' };
}

/**
 * The `delta-replay` check, or undefined when it cannot apply: the manifest records no HashKV, or
 * no older snapshot plus log reaches its revision. Never throws: a failure is a failed check.
 */
export async function replayCheck(options: DrillOptions, drilled?: ContentDigest): Promise<DrillCheck | undefined> {
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
    let replayed: { hash: number; counts: string[]; content?: ContentDigest } | undefined;
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
        // The lease-blind digest is needed only when the hashes differ; it is taken here, while the
        // replayed etcd runs.
        const content =
          drilled && h.hash !== expected.hash ? await contentDigest(client, expected.revision) : undefined;
        replayed = { hash: h.hash, counts, ...(content ? { content } : {}) };
      },
    });
    if (!replayed) throw new Error('the replayed etcd was not inspected');
    const start = `snapshot ${report.snapshot.id} (revision ${report.snapshotRevision}) + ${report.segments} delta segments (${report.events} events) replayed to revision ${expected.revision}`;
    const verdict = replayVerdict({
      hashMatches: replayed.hash === expected.hash,
      leasesDropped: report.leasesDropped,
      ...(replayed.content ? { replayed: replayed.content } : {}),
      ...(drilled ? { drilled } : {}),
    });
    if (!verdict.ok) {
      if (verdict.by === 'content') {
        return {
          name,
          ok: false,
          detail: `${start}: HashKV differs (${report.leasesDropped} replayed events carried a lease, which replay drops), and key by key the state differs too: ${replayed.content?.keys ?? 0} keys digest ${replayed.content?.sha256.slice(0, 16) ?? ''}, snapshot ${manifest.id} has ${drilled?.keys ?? 0} keys digest ${drilled?.sha256.slice(0, 16) ?? ''}: the log does not reproduce etcd's state`,
        };
      }
      return {
        name,
        ok: false,
        detail: `${start}: HashKV ${replayed.hash}, but snapshot ${manifest.id} recorded ${expected.hash} on the source: the log does not reproduce etcd's state`,
      };
    }
    if (replayed.counts.length > 0) {
      return { name, ok: false, detail: `${start}: key counts differ: ${replayed.counts.slice(0, 10).join('; ')}` };
    }
    return {
      name,
      ok: true,
      detail:
        verdict.by === 'hashkv'
          ? `${start}: HashKV ${expected.hash}${manifest.keyCounts ? ' and key counts' : ''} as snapshot ${manifest.id} recorded on the source`
          : `${start}: every key's value, create/mod revision and version equal to snapshot ${manifest.id}'s (${drilled?.keys ?? 0} keys; HashKV differs only by the leases of ${report.leasesDropped} events, which replay drops)${manifest.keyCounts ? ', key counts as recorded' : ''}`,
    };
  } catch (err) {
    return { name, ok: false, detail: `replaying the log failed: ${messageOf(err)}` };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
