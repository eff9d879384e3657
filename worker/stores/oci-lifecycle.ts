/**
 * Hot and cold data on OCI: an object lifecycle policy on the cluster's snapshot prefix that moves
 * snapshots to the Archive (or Infrequent Access) tier after `transitionDays` and deletes snapshots
 * and manifests after `expireDays`. Manifests stay in the Standard tier, so listing, retention and
 * `verify` of the manifest keep working; an archived snapshot must be restored before `restore`.
 *
 * A bucket has one lifecycle policy holding every rule, and PUT replaces it whole: the rules we own
 * (named for this cluster's prefix) are replaced, every other rule is kept as it was, nothing is
 * written when ours are already right, and the write is conditional on the policy's ETag so that a
 * concurrent edit is not lost.
 */
import { createHash } from 'node:crypto';
import type { models } from 'oci-objectstorage';
import type { Config } from '../../core/config/index.js';
import { ConfigError } from '../../core/errors.js';
import { MANIFEST_SUFFIX, snapshotsPrefix } from '../manifest.js';
import { describeOciError, isNotFound, ociFailure } from './oci-errors.js';
import type { OciStore } from './oci.js';
import { joinKey } from './store.js';

type LifecycleConfig = Config['lifecycle'];
type Rule = models.ObjectLifecycleRule;

export interface OciLifecycleResult {
  /** Whether the bucket's policy differs (was written, or would be on a dry run) from ours. */
  changed: boolean;
  dryRun: boolean;
  bucket: string;
  /** Full object-name prefix the rules apply to. */
  prefix: string;
  /** Our rules as they are now (or would be) in the policy. */
  items: Rule[];
  /** Names of our rules now in the policy. */
  rules: string[];
  /** Rules of others that were kept untouched. */
  kept: string[];
}

/** The rules for objects under `snapshotPrefix` (a full object-name prefix ending in `/`). */
export function ociLifecycleRules(
  cluster: string,
  snapshotPrefix: string,
  lifecycle: LifecycleConfig,
): { ours: Rule[]; names: string[] } {
  const action = archiveAction(lifecycle.storageClass);
  const id = createHash('sha256').update(snapshotPrefix).digest('hex').slice(0, 8);
  const base = `etcd-autobackup-${cluster}-${id}`;
  const names = [`${base}-archive`, `${base}-expire`];
  const all = `${globEscape(snapshotPrefix)}*`;
  const ours: Rule[] = [];
  if (lifecycle.transitionDays > 0) {
    ours.push({
      name: names[0] as string,
      target: 'objects',
      action,
      timeAmount: lifecycle.transitionDays,
      timeUnit: 'DAYS' as Rule['timeUnit'],
      isEnabled: true,
      // Manifests are small and read by every listing; archiving them would make the catalog unreadable.
      objectNameFilter: { inclusionPatterns: [all], exclusionPatterns: [`${all}${globEscape(MANIFEST_SUFFIX)}`] },
    });
  }
  if (lifecycle.expireDays > 0) {
    ours.push({
      name: names[1] as string,
      target: 'objects',
      action: 'DELETE',
      timeAmount: lifecycle.expireDays,
      timeUnit: 'DAYS' as Rule['timeUnit'],
      isEnabled: true,
      objectNameFilter: { inclusionPatterns: [all] },
    });
  }
  return { ours, names };
}

/** Existing rules with ours put in place of any of the same name; `changed` when that differs. */
export function mergeLifecycleRules(
  existing: Rule[],
  ours: Rule[],
  ourNames: string[],
): { items: Rule[]; changed: boolean; kept: string[] } {
  const others = existing.filter((r) => !ourNames.includes(r.name));
  const current = existing.filter((r) => ourNames.includes(r.name));
  const items = [...others, ...ours];
  const key = (rules: Rule[]) => JSON.stringify(rules.map(canonical).sort((a, b) => a.name.localeCompare(b.name)));
  return { items, changed: key(current) !== key(ours), kept: others.map((r) => r.name) };
}

/** Applies the lifecycle rules for `cluster` under the store's prefix. Idempotent; `dryRun` reads only. */
export async function applyOciLifecycle(
  store: OciStore,
  cluster: string,
  lifecycle: LifecycleConfig,
  options: { dryRun?: boolean } = {},
): Promise<OciLifecycleResult> {
  const dryRun = options.dryRun ?? false;
  const prefix = joinKey(store.prefix, snapshotsPrefix(cluster));
  const { ours, names } = ociLifecycleRules(cluster, prefix, lifecycle);
  const where = { namespace: store.namespace, bucket: store.bucket, endpoint: store.endpoint };
  const target = { namespaceName: store.namespace, bucketName: store.bucket };
  let existing: Rule[] = [];
  let etag: string | undefined;
  try {
    const got = await store.client.getObjectLifecyclePolicy(target);
    existing = got.objectLifecyclePolicy.items ?? [];
    etag = got.eTag;
  } catch (err) {
    if (!isNotFound(err, 'LifecyclePolicyNotFound')) throw lifecycleError('reading', store, err, where);
  }
  const { items, changed, kept } = mergeLifecycleRules(existing, ours, names);
  if (changed && !dryRun) {
    const condition = etag ? { ifMatch: etag } : { ifNoneMatch: '*' };
    try {
      if (items.length === 0)
        await store.client.deleteObjectLifecyclePolicy({ ...target, ...(etag ? { ifMatch: etag } : {}) });
      else
        await store.client.putObjectLifecyclePolicy({
          ...target,
          ...condition,
          putObjectLifecyclePolicyDetails: { items },
        });
    } catch (err) {
      throw lifecycleError('writing', store, err, where);
    }
  }
  return { changed, dryRun, bucket: store.bucket, prefix, items: ours, rules: ours.map((r) => r.name), kept };
}

function lifecycleError(
  doing: string,
  store: OciStore,
  err: unknown,
  where: Parameters<typeof describeOciError>[1],
): Error {
  const { status, code } = ociFailure(err);
  const said = describeOciError(err, where);
  let hint = '';
  if (status === 412) hint = ' (the policy changed while it was being merged; run again)';
  else if (code === 'InsufficientServicePermissions') {
    hint =
      ' (Object Storage itself needs permission to archive and delete objects: add an IAM policy statement' +
      " `Allow service objectstorage-<region> to manage object-family in compartment <bucket's compartment>`)";
  } else if (status === 403 || status === 404) {
    hint =
      " (changing a lifecycle policy needs BUCKET_UPDATE: an IAM policy must let the user's group `manage buckets` in the bucket's compartment)";
  }
  return new Error(`${doing} the lifecycle policy of ${store.where} failed: ${said}${hint}`, { cause: err });
}

function archiveAction(storageClass: string | undefined): string {
  switch (storageClass ?? 'Archive') {
    case 'Archive':
      return 'ARCHIVE';
    case 'InfrequentAccess':
      return 'INFREQUENT_ACCESS';
    default:
      throw new ConfigError(
        `lifecycle.storageClass: "${storageClass ?? ''}" is not an OCI storage tier (Archive or InfrequentAccess)`,
      );
  }
}

/** The fields a rule is compared on; the service may add empty lists or defaults of its own. */
function canonical(r: Rule): { name: string } & Record<string, unknown> {
  const f = r.objectNameFilter ?? {};
  return {
    name: r.name,
    target: r.target ?? 'objects',
    action: r.action,
    timeAmount: r.timeAmount,
    timeUnit: r.timeUnit,
    isEnabled: r.isEnabled,
    inclusionPrefixes: f.inclusionPrefixes ?? [],
    inclusionPatterns: f.inclusionPatterns ?? [],
    exclusionPatterns: f.exclusionPatterns ?? [],
  };
}

function globEscape(s: string): string {
  return s.replace(/[\\*?[\]]/g, '\\$&');
}
