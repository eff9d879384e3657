/** `etcd-autobackup worker`: run the snapshot worker: takes queued snapshots and stores them. */
import type { Command } from 'commander';
import { withConfigOptions, type CliContext } from '../options.js';
import { runRoles } from '../roles.js';

export function registerWorker(program: Command, context: CliContext): void {
  withConfigOptions(
    program.command('worker').description('run the snapshot worker: takes queued snapshots and stores them'),
  ).action((_opts: unknown, cmd: Command) => runRoles(['worker'], cmd, context));
}
