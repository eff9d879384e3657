/** `etcd-autobackup lifecycle apply [--dry-run]`: put the hot/cold lifecycle rule on the cluster's prefix. */
import type { Command } from 'commander';
import type { Config } from '../../core/config/index.js';
import { ConfigError } from '../../core/errors.js';
import type { LifecycleResult } from '../../worker/stores/s3-lifecycle.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';

export function registerLifecycle(program: Command, context: CliContext): void {
  const lifecycle = program.command('lifecycle').description('bucket lifecycle rules for the cluster\'s snapshots (archive tier, expiry)');
  withConfigOptions(
    lifecycle
      .command('apply')
      .description('add or update this cluster\'s lifecycle rule in the bucket, keeping every other rule (needs lifecycle.enabled)')
      .option('--dry-run', 'show the rule and what would change; change nothing')
      .option('--json', 'print the result as JSON'),
  ).action(async (opts: { dryRun?: boolean; json?: boolean }, cmd: Command) => {
    const { config, log } = setup(cmd);
    if (!config.lifecycle.enabled) {
      throw new ConfigError('lifecycle.enabled is false: set lifecycle.enabled: true (or --lifecycle) to apply a lifecycle rule');
    }
    const result = await applyLifecycle(config, opts.dryRun ?? false);
    for (const warning of result.warnings) log.warn(warning);
    context.print(opts.json ? JSON.stringify(result, null, 2) : describeLifecycle(result));
  });
}

async function applyLifecycle(config: Config, dryRun: boolean): Promise<LifecycleResult> {
  const url = config.store.url;
  const scheme = url.includes('://') ? url.slice(0, url.indexOf('://')) : 'file';
  switch (scheme) {
    case 's3': {
      const { applyS3Lifecycle } = await import('../../worker/stores/s3-lifecycle.js');
      return applyS3Lifecycle({ url, s3: config.store.s3, cluster: config.cluster, lifecycle: config.lifecycle, dryRun });
    }
    case 'ncp':
      throw new ConfigError('store.url: NCP Object Storage lifecycle rules are set in the NCP console (Object Storage > Bucket > Lifecycle management); see docs/retention.md');
    case 'file':
      throw new ConfigError('store.url: a file store has no lifecycle rules; retention (etcd-autobackup prune) deletes old snapshots there');
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
