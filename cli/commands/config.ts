/** `etcd-autobackup config check`: load the configuration as the service would and print it, secrets redacted. */
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { redactConfig } from '../../core/config/index.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';

export function registerConfig(program: Command, context: CliContext): void {
  const config = program.command('config').description('the configuration the service runs with');
  withConfigOptions(
    config
      .command('check')
      .description(
        'load the config file, ETCD_AUTOBACKUP_* env vars and flags as the service does and print the effective configuration, secrets redacted; exits 2 naming the field when a value is wrong',
      )
      .option('--json', 'print JSON instead of YAML'),
  ).action((opts: { json?: boolean }, cmd: Command) => {
    // A wrong value throws a ConfigError here, which main turns into exit code 2 with its message.
    const { config: effective } = setup(cmd);
    const safe = redactConfig(effective);
    context.print(opts.json ? JSON.stringify(safe, null, 2) : stringify(safe).trimEnd());
  });
}
