/** `etcd-autobackup lifecycle apply [--dry-run]`: put the hot/cold lifecycle rule on the cluster's prefix. */
import type { Command } from 'commander';
import { ConfigError } from '../../core/errors.js';
import { applyLifecycle } from '../../worker/lifecycle.js';
import type { OciLifecycleResult } from '../../worker/stores/oci-lifecycle.js';
import type { LifecycleResult } from '../../worker/stores/s3-lifecycle.js';
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
