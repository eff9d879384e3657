/**
 * The I/O around target.ts: reads the catalog of snapshots and the delta log, reads the segments a
 * `--to-time` or `--before` needs, and turns what the operator asked for into a RestorePlan.
 * `history` is here too: it is the same scan of the log for one key (or a key prefix).
 */
import type { AgeIdentities } from '../crypto/age.js';
import type { KeyRing } from '../crypto/keys.js';
import { listSnapshots } from '../catalog.js';
import type { Manifest } from '../manifest.js';
import type { Store } from '../stores/store.js';
import { readDeltaCatalog } from './catalog.js';
import { resourceKey } from './resource-key.js';
import { readSegment } from './segment-read.js';
import { buildChains, type ChainProblem, type DeltaChain, type DeltaGap, type DeltaManifest } from './segment.js';
import {
  beforeChangeTarget,
  checkTimeTarget,
  logRuns,
  lookupTime,
  planRestore,
  revisionAtTime,
  TargetError,
  type KeyChange,
  type LogRun,
  type RestorePlan,
} from './target.js';

/** What the operator asked for; exactly one. */
export type TargetSpec =
  | { toRevision: number }
  | { toTime: Date }
  /** A Kubernetes object (resource-key.ts) or an etcd key starting with `/`. */
  | { before: string }
  | { beforeRevision: number };

export interface LogReadOptions {
  keys?: KeyRing | undefined;
  identities?: AgeIdentities | undefined;
  signal?: AbortSignal | undefined;
  /** Called for each manifest or gap record that cannot be used. @defaultValue ignored */
  onInvalid?: (key: string, problem: string) => void;
}

/** The snapshots and the delta log of a cluster, as the decisions need them. */
export interface LogState {
  snapshots: Manifest[];
  chains: DeltaChain[];
  runs: LogRun[];
  gaps: DeltaGap[];
  problems: ChainProblem[];
}

export async function readLogState(store: Store, cluster: string, options: LogReadOptions = {}): Promise<LogState> {
  const onInvalid = options.onInvalid ? { onInvalid: options.onInvalid } : {};
  const [snapshots, catalog] = await Promise.all([
    listSnapshots(store, cluster, onInvalid),
    readDeltaCatalog(store, cluster, onInvalid),
  ]);
  const { chains, problems } = buildChains(catalog.manifests);
  return { snapshots, chains, runs: logRuns(chains), gaps: catalog.gaps, problems };
}

export interface ResolvedTarget {
  plan: RestorePlan;
  /** How the target was found, for the operator. */
  reason: string;
}

export async function resolveTarget(
  store: Store,
  state: LogState,
  spec: TargetSpec,
  options: LogReadOptions = {},
): Promise<ResolvedTarget> {
  const plan = (target: number) => planRestore(target, state.snapshots, state.chains, state.gaps);
  if ('toRevision' in spec) return { plan: plan(spec.toRevision), reason: `revision ${spec.toRevision}` };
  if ('beforeRevision' in spec) {
    return { plan: plan(spec.beforeRevision - 1), reason: `the revision before ${spec.beforeRevision}` };
  }
  if ('toTime' in spec) {
    const at = spec.toTime.getTime();
    if (!Number.isFinite(at)) throw new TargetError('--to-time is not a valid time');
    const lookup = lookupTime(at, state.snapshots, state.runs);
    let revision: number;
    if (lookup.kind === 'revision') {
      revision = lookup.revision;
    } else {
      const events: { revision: number; receivedAt: number }[] = [];
      for await (const e of readSegment({ store, manifest: lookup.segment, ...options })) {
        events.push({ revision: e.revision, receivedAt: e.receivedAt });
      }
      revision = revisionAtTime(at, lookup.floor, events);
    }
    revision = checkTimeTarget(at, revision, state.snapshots, state.runs, state.gaps);
    return {
      plan: plan(revision),
      reason: `revision ${revision}, the newest whose events were received at or before ${spec.toTime.toISOString()}`,
    };
  }
  const key = resourceKey(spec.before);
  const changes = await keyHistory(store, state, key, { ...options, prefix: false });
  const target = beforeChangeTarget(key, changes);
  const change = changes.find((c) => c.revision === target + 1);
  return {
    plan: plan(target),
    reason: `revision ${target}, just before the ${change?.type === 'delete' ? 'delete' : 'update'} of ${key} at revision ${target + 1}`,
  };
}

export interface KeyHistoryEntry extends KeyChange {
  key: string;
}

/**
 * Every change the log holds for `key` (or every key under it with `prefix`), oldest first. Reads
 * every segment of every chain (each checked against its SHA-256s); memory holds only the matches.
 */
export async function keyHistory(
  store: Store,
  state: Pick<LogState, 'chains'>,
  key: string,
  options: LogReadOptions & { prefix: boolean },
): Promise<KeyHistoryEntry[]> {
  const wanted = Buffer.from(key);
  const segments: DeltaManifest[] = state.chains.flatMap((c) => c.segments);
  const out: KeyHistoryEntry[] = [];
  const seen = new Set<string>();
  for (const manifest of segments) {
    for await (const e of readSegment({ store, manifest, ...options })) {
      const match = options.prefix
        ? e.key.length >= wanted.length && e.key.subarray(0, wanted.length).equals(wanted)
        : e.key.equals(wanted);
      if (!match) continue;
      const k = e.key.toString('utf8');
      // Chains that overlap (two histories) may hold the same revision twice; history shows it once.
      const id = `${e.revision}\0${k}`;
      if (seen.has(id)) continue;
      seen.add(id);
      out.push({
        key: k,
        revision: e.revision,
        type: e.type,
        version: e.version,
        receivedAt: e.receivedAt,
        size: e.value.length,
      });
    }
  }
  return out.sort((a, b) => a.revision - b.revision || a.key.localeCompare(b.key));
}
