/** `etcd-autobackup lifecycle apply [--dry-run]`: put the hot/cold lifecycle rule on the cluster's prefix. */
import type { Command } from 'commander';
import type { Config } from '../../core/config/index.js';
import { ConfigError } from '../../core/errors.js';
import type { OciLifecycleResult } from '../../worker/stores/oci-lifecycle.js';
import type { LifecycleResult } from '../../worker/stores/s3-lifecycle.js';

/** What apply did, per provider: S3 and OCI model lifecycle rules differently. */
type Applied = { provider: 's3'; result: LifecycleResult } | { provider: 'oci'; result: OciLifecycleResult };
import { setup, withConfigOptions, type CliContext } from '../options.js';

export function registerLifecycle(program: Command, context: CliContext): void {
  const lifecycle = program
    .command('lifecycle')
    .description("bucket lifecycle rules for the cluster's snapshots (archive tier, expiry)");
  withConfigOptions(
    lifecycle
      .command('apply')
      .description(
        "add or update this cluster's lifecycle rule in the bucket, keeping every other rule (needs lifecycle.enabled)",
      )
      .option('--dry-run', 'show the rule and what would change; change nothing')
      .option('--json', 'print the result as JSON'),
  ).action(async (opts: { dryRun?: boolean; json?: boolean }, cmd: Command) => {
    const { config, log } = setup(cmd);
    if (!config.lifecycle.enabled) {
      throw new ConfigError(
        'lifecycle.enabled is false: set lifecycle.enabled: true (or --lifecycle) to apply a lifecycle rule',
      );
    }
    const applied = await applyLifecycle(config, opts.dryRun ?? false);
    if (applied.provider === 's3') for (const warning of applied.result.warnings) log.warn(warning);
    if (opts.json) context.print(JSON.stringify(applied.result, null, 2));
    else
      context.print(
        applied.provider === 's3' ? describeLifecycle(applied.result) : describeOciLifecycle(applied.result),
      );
  });
}

async function applyLifecycle(config: Config, dryRun: boolean): Promise<Applied> {
  const url = config.store.url;
  const scheme = url.includes('://') ? url.slice(0, url.indexOf('://')) : 'file';
  switch (scheme) {
    case 's3': {
      const { applyS3Lifecycle } = await import('../../worker/stores/s3-lifecycle.js');
      return {
        provider: 's3',
        result: await applyS3Lifecycle({
          url,
          s3: config.store.s3,
          cluster: config.cluster,
          lifecycle: config.lifecycle,
          dryRun,
        }),
      };
    }
    case 'oci': {
      const { openOciStore } = await import('../../worker/stores/oci.js');
      const { applyOciLifecycle } = await import('../../worker/stores/oci-lifecycle.js');
      const store = openOciStore(url, config.store.oci);
      try {
        return {
          provider: 'oci',
          result: await applyOciLifecycle(store, config.cluster, config.lifecycle, { dryRun }),
        };
      } finally {
        await store.close();
      }
    }
    case 'ncp':
      throw new ConfigError(
        'store.url: NCP Object Storage lifecycle rules are set in the NCP console (Object Storage > Bucket > Lifecycle management); see docs/retention.md',
      );
    case 'file':
      throw new ConfigError(
        'store.url: a file store has no lifecycle rules; retention (etcd-autobackup prune) deletes old snapshots there',
      );
    default:
      throw new ConfigError(`store.url: "${scheme}://" stores have no lifecycle support yet`);
  }
}

export function describeLifecycle(r: LifecycleResult): string {
  const archive = r.rules.find((rule) => rule.ID === r.ruleIds.archive)?.Transitions?.[0];
  const expire = r.rules.find((rule) => rule.ID === r.ruleIds.expire)?.Expiration?.Days;
  const ids = r.rules.map((rule) => rule.ID).join(' and ');
  const verb = { added: 'added', updated: 'updated', unchanged: 'already in place' }[r.change];
  const head =
    r.dryRun && r.change !== 'unchanged'
      ? `would ${r.change === 'added' ? 'add' : 'update'} ${ids} in bucket ${r.bucket} (dry run: nothing changed)`
      : `${ids} in bucket ${r.bucket}: ${verb}`;
  return [
    head,
    `  prefix       ${r.prefix}`,
    `  archive      ${archive ? `to ${archive.StorageClass} after ${archive.Days} days (objects over 128 KiB: snapshots, not manifests)` : 'off'}`,
    `  expire       ${expire !== undefined ? `after ${expire} days` : 'off'}`,
    `  other rules  ${r.otherRules.length > 0 ? `${r.otherRules.join(', ')} (kept as they were)` : 'none'}`,
    ...r.warnings.map((w) => `  warning      ${w}`),
  ].join('\n');
}

export function describeOciLifecycle(r: OciLifecycleResult): string {
  const names = r.rules.join(' and ');
  const head = r.changed
    ? r.dryRun
      ? `would write ${names} into the lifecycle policy of bucket ${r.bucket} (dry run: nothing changed)`
      : `${names} in the lifecycle policy of bucket ${r.bucket}: written`
    : `${names} in the lifecycle policy of bucket ${r.bucket}: already in place`;
  return [
    head,
    `  prefix       ${r.prefix}`,
    ...r.items.map(
      (rule) => `  rule         ${rule.name}: ${rule.action} after ${rule.timeAmount} ${rule.timeUnit.toLowerCase()}`,
    ),
    `  other rules  ${r.kept.length > 0 ? `${r.kept.join(', ')} (kept as they were)` : 'none'}`,
  ].join('\n');
}
