/** `etcd-autobackup webhook`: run the change-signal receiver: audit and admission webhooks, etcd watch, dashboard. */
import type { Command } from 'commander';
import { withConfigOptions, type CliContext } from '../options.js';
import { runRoles } from '../roles.js';

export function registerWebhook(program: Command, context: CliContext): void {
  withConfigOptions(
    program
      .command('webhook')
      .description('run the change-signal receiver: audit and admission webhooks, etcd watch, dashboard'),
  ).action((_opts: unknown, cmd: Command) => runRoles(['webhook'], cmd, context));
}
