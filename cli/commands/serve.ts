/** `etcd-autobackup serve`: run the webhook and the worker in one process (small clusters, local use). */
import type { Command } from 'commander';
import { withConfigOptions, type CliContext } from '../options.js';
import { runRoles } from '../roles.js';

export function registerServe(program: Command, context: CliContext): void {
  withConfigOptions(
    program.command('serve').description('run the webhook and the worker in one process (small clusters, local use)'),
  ).action((_opts: unknown, cmd: Command) => runRoles(['webhook', 'worker'], cmd, context));
}
