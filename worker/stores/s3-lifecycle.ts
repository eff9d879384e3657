/**
 * Hot and cold data on S3: lifecycle rules on the cluster's snapshots prefix that move snapshots
 * to an archive storage class after `transitionDays` and let S3 delete them after `expireDays`.
 *
 * Two rules, because manifests must stay readable: `list`, `verify`, `restore` and retention read
 * every manifest, and GLACIER or DEEP_ARCHIVE objects cannot be read without a restore request.
 * - `etcd-autobackup-archive-<cluster>`: the transition, only for objects over 128 KiB (snapshot
 *   objects; manifests are a few KiB). S3 itself skips transitions under 128 KiB by default,
 *   because per-object fees outweigh the saving.
 * - `etcd-autobackup-expire-<cluster>`: expiry of everything under the prefix, so a manifest and
 *   its object (written seconds apart) expire together; also clears abandoned multipart uploads.
 *
 * A bucket has one lifecycle configuration shared by everything in it, so ours are merged in by
 * ID: other rules are put back exactly as S3 returned them, ours are added once or updated in
 * place (and removed when no longer wanted), and an apply that would change nothing sends nothing.
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
import {
  GetBucketLifecycleConfigurationCommand,
  PutBucketLifecycleConfigurationCommand,
  S3Client,
  TransitionStorageClass,
  type LifecycleRule,
  type TransitionDefaultMinimumObjectSize,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { LifecycleConfig, S3Config } from '../../core/config/schema.js';
import { ConfigError, messageOf } from '../../core/errors.js';
import { snapshotsPrefix } from '../manifest.js';
import { parseBucketUrl } from './bucket-url.js';
import { describeS3Error, errorName } from './s3-errors.js';
import { joinKey } from './store.js';

export const DEFAULT_S3_STORAGE_CLASS = TransitionStorageClass.GLACIER;
/** Smaller objects (manifests, tiny snapshots) never move to the archive class. */
export const ARCHIVE_MIN_BYTES = 128 * 1024;
/** Parts of an upload that failed and could not be aborted cost money until this removes them. */
const ABORT_INCOMPLETE_UPLOADS_DAYS = 7;
/** S3 refuses transitions to these classes sooner than 30 days after creation. */
const THIRTY_DAY_CLASSES: readonly string[] = [TransitionStorageClass.STANDARD_IA, TransitionStorageClass.ONEZONE_IA];

export interface LifecycleTarget {
  bucket: string;
  /** Full key prefix of the cluster's snapshots in the bucket, e.g. `backups/prod/snapshots/`. */
  prefix: string;
  /** IDs of our rules; no cluster name can make one cluster's ID another's. */
  ruleIds: { archive: string; expire: string };
}

export type LifecycleChange = 'added' | 'updated' | 'unchanged';

export interface LifecycleResult extends LifecycleTarget {
  change: LifecycleChange;
  dryRun: boolean;
  /** Our rules as they are (or, in a dry run, would be) in the bucket. */
  rules: LifecycleRule[];
  /** IDs of the other rules, kept as they were. */
  otherRules: string[];
  /** Things the operator should know, e.g. another rule that also expires the snapshots. */
  warnings: string[];
}

export function lifecycleTarget(url: string, cluster: string): LifecycleTarget {
  const { bucket, prefix } = parseBucketUrl(url);
  return {
    bucket,
    prefix: joinKey(prefix, snapshotsPrefix(cluster)),
    ruleIds: { archive: `etcd-autobackup-archive-${cluster}`, expire: `etcd-autobackup-expire-${cluster}` },
  };
}

/** The rules the config asks for; ConfigError when S3 would refuse them. */
export function desiredRules(target: LifecycleTarget, lifecycle: LifecycleConfig): LifecycleRule[] {
  const storageClass = lifecycle.storageClass ?? DEFAULT_S3_STORAGE_CLASS;
  const classes: readonly string[] = Object.values(TransitionStorageClass);
  if (lifecycle.transitionDays > 0 && !classes.includes(storageClass)) {
    throw new ConfigError(
      `lifecycle.storageClass: "${storageClass}" is not an S3 transition storage class (expected one of ${classes.join(', ')})`,
    );
  }
  if (lifecycle.transitionDays > 0 && lifecycle.transitionDays < 30 && THIRTY_DAY_CLASSES.includes(storageClass)) {
    throw new ConfigError(
      `lifecycle.transitionDays: S3 moves objects to ${storageClass} no sooner than 30 days after they are written (got ${lifecycle.transitionDays})`,
    );
  }
  if (lifecycle.transitionDays === 0 && lifecycle.expireDays === 0) {
    throw new ConfigError('lifecycle: transitionDays and expireDays are both 0, so there is no rule to apply');
  }
  const rules: LifecycleRule[] = [];
  if (lifecycle.transitionDays > 0) {
    rules.push({
      ID: target.ruleIds.archive,
      Filter: { And: { Prefix: target.prefix, ObjectSizeGreaterThan: ARCHIVE_MIN_BYTES } },
      Status: 'Enabled',
      Transitions: [{ Days: lifecycle.transitionDays, StorageClass: storageClass as TransitionStorageClass }],
    });
  }
  rules.push({
    ID: target.ruleIds.expire,
    Filter: { Prefix: target.prefix },
    Status: 'Enabled',
    ...(lifecycle.expireDays > 0 ? { Expiration: { Days: lifecycle.expireDays } } : {}),
    AbortIncompleteMultipartUpload: { DaysAfterInitiation: ABORT_INCOMPLETE_UPLOADS_DAYS },
  });
  return rules;
}

/**
 * `existing` with our rules (those whose ID is in `ours`) made equal to `desired`: each updated in
 * place or appended, ours no longer desired dropped, every other rule kept in its order.
 */
export function mergeRules(
  existing: readonly LifecycleRule[],
  desired: readonly LifecycleRule[],
  ours: readonly string[],
): { rules: LifecycleRule[]; change: LifecycleChange } {
  const wanted = new Map(desired.map((r) => [r.ID, r]));
  const placed = new Set<string | undefined>();
  const rules: LifecycleRule[] = [];
  for (const r of existing) {
    if (!ours.includes(r.ID ?? '')) rules.push(r);
    else if (wanted.has(r.ID) && !placed.has(r.ID)) {
      rules.push(wanted.get(r.ID) as LifecycleRule);
      placed.add(r.ID);
    }
  }
  for (const r of desired) if (!placed.has(r.ID)) rules.push(r);
  const hadOurs = existing.some((r) => ours.includes(r.ID ?? ''));
  const change = canonical(rules) === canonical(existing) ? 'unchanged' : hadOurs ? 'updated' : 'added';
  return { rules, change };
}

/** Other enabled rules that also act on the snapshots, which the operator may not expect. */
export function overlapWarnings(existing: readonly LifecycleRule[], target: LifecycleTarget): string[] {
  const ours = target.prefix;
  const ids: readonly string[] = Object.values(target.ruleIds);
  const warnings: string[] = [];
  for (const r of existing) {
    if (ids.includes(r.ID ?? '') || r.Status !== 'Enabled') continue;
    const prefix = r.Filter?.Prefix ?? r.Filter?.And?.Prefix ?? r.Prefix ?? '';
    if (!ours.startsWith(prefix) && !prefix.startsWith(ours)) continue;
    const acts = [
      r.Expiration?.Days !== undefined || r.Expiration?.Date ? 'expires' : '',
      r.Transitions?.length ? 'moves' : '',
    ].filter(Boolean);
    if (acts.length === 0) continue;
    warnings.push(`rule "${r.ID ?? '(no id)'}" on prefix "${prefix}" also ${acts.join(' and ')} objects under ${ours}`);
  }
  return warnings;
}

export interface ApplyS3LifecycleOptions {
  url: string;
  s3: S3Config;
  cluster: string;
  lifecycle: LifecycleConfig;
  /** Read and decide, send nothing. */
  dryRun?: boolean;
}

export async function applyS3Lifecycle(options: ApplyS3LifecycleOptions): Promise<LifecycleResult> {
  const target = lifecycleTarget(options.url, options.cluster);
  const desired = desiredRules(target, options.lifecycle);
  const ours: readonly string[] = Object.values(target.ruleIds);
  const { client, agent } = lifecycleClient(options.s3);
  try {
    const current = await getRules(client, target.bucket);
    const { rules, change } = mergeRules(current.rules, desired, ours);
    const warnings = overlapWarnings(current.rules, target);
    const archiveClass = desired.find((r) => r.Transitions)?.Transitions?.[0]?.StorageClass;
    if (options.s3.endpoint && archiveClass) {
      warnings.push(
        `store.s3.endpoint is set: ${archiveClass} is an AWS name, which S3-compatible services may reject or map differently`,
      );
    }
    if (change !== 'unchanged' && !options.dryRun) {
      try {
        await client.send(
          new PutBucketLifecycleConfigurationCommand({
            Bucket: target.bucket,
            LifecycleConfiguration: { Rules: rules },
            ...(current.minimumObjectSize ? { TransitionDefaultMinimumObjectSize: current.minimumObjectSize } : {}),
          }),
        );
      } catch (err) {
        throw lifecycleError('changing', target.bucket, err);
      }
    }
    return {
      ...target,
      change,
      dryRun: options.dryRun ?? false,
      rules: desired,
      otherRules: current.rules.filter((r) => !ours.includes(r.ID ?? '')).map((r) => r.ID ?? '(no id)'),
      warnings,
    };
  } finally {
    client.destroy();
    agent?.destroy();
  }
}

async function getRules(
  client: S3Client,
  bucket: string,
): Promise<{ rules: LifecycleRule[]; minimumObjectSize?: TransitionDefaultMinimumObjectSize }> {
  try {
    const out = await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }));
    return {
      rules: out.Rules ?? [],
      ...(out.TransitionDefaultMinimumObjectSize ? { minimumObjectSize: out.TransitionDefaultMinimumObjectSize } : {}),
    };
  } catch (err) {
    if (errorName(err) === 'NoSuchLifecycleConfiguration') return { rules: [] };
    throw lifecycleError('reading', bucket, err);
  }
}

function lifecycleError(doing: 'reading' | 'changing', bucket: string, err: unknown): Error {
  const status = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  if (errorName(err) === 'AccessDenied' || status === 403) {
    return new Error(
      `${doing} the lifecycle configuration of bucket "${bucket}" was refused (${messageOf(err)}): the credentials need ` +
        `s3:GetLifecycleConfiguration and s3:PutLifecycleConfiguration on arn:aws:s3:::${bucket}; grant them, or add the rule ` +
        'yourself as docs/retention.md shows',
      { cause: err },
    );
  }
  return new Error(`${doing} the lifecycle configuration of bucket "${bucket}" failed: ${describeS3Error(err)}`, {
    cause: err,
  });
}

/** Rules compared by content: key order and absent-versus-empty do not count as a change. */
function canonical(value: unknown): string {
  const norm = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.length === 0 ? undefined : v.map(norm);
    if (v instanceof Date) return v.toISOString();
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v).sort()) {
        const inner = norm((v as Record<string, unknown>)[key]);
        if (inner !== undefined) out[key] = inner;
      }
      return Object.keys(out).length === 0 ? undefined : out;
    }
    return v;
  };
  return JSON.stringify(norm(value) ?? null);
}

function lifecycleClient(s3: S3Config): { client: S3Client; agent: HttpsAgent | undefined } {
  if ((s3.accessKeyId === undefined) !== (s3.secretAccessKey === undefined)) {
    throw new ConfigError(
      'store.s3.accessKeyId and store.s3.secretAccessKey go together: give both, or neither to use the AWS credential chain',
    );
  }
  let httpsAgent: HttpsAgent | undefined;
  if (s3.caFile) {
    try {
      httpsAgent = new HttpsAgent({ keepAlive: true, ca: [...rootCertificates, readFileSync(s3.caFile, 'utf8')] });
    } catch (err) {
      throw new ConfigError(`store.s3.caFile: cannot read "${s3.caFile}": ${messageOf(err)}`);
    }
  }
  const checksums = s3.endpoint ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
  const client = new S3Client({
    ...(s3.region ? { region: s3.region } : s3.endpoint ? { region: 'us-east-1' } : {}),
    ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
    forcePathStyle: s3.forcePathStyle ?? false,
    ...(s3.accessKeyId && s3.secretAccessKey
      ? {
          credentials: {
            accessKeyId: s3.accessKeyId,
            secretAccessKey: s3.secretAccessKey,
            ...(s3.sessionToken ? { sessionToken: s3.sessionToken } : {}),
          },
        }
      : {}),
    requestChecksumCalculation: checksums,
    responseChecksumValidation: checksums,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 30_000,
      socketTimeout: 60_000,
      ...(httpsAgent ? { httpsAgent } : {}),
    }),
  });
  return { client, agent: httpsAgent };
}
