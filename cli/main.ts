#!/usr/bin/env node
/**
 * The etcd-autobackup command. Each subcommand lives in cli/commands/<name>.ts and registers
 * itself; adding one is a new file and one line in COMMANDS. Exit codes: 0 ok, 1 failure,
 * 2 wrong usage or configuration, 130 interrupted twice.
 */
import { Command, CommanderError } from 'commander';
import { ConfigError, messageOf } from '../core/errors.js';
import { VERSION } from '../core/version.js';
import { registerConfig } from './commands/config.js';
import { registerLifecycle } from './commands/lifecycle.js';
import { registerAuditConfig } from './commands/audit-config.js';
import { registerDrill } from './commands/drill.js';
import { registerList } from './commands/list.js';
import { registerPrune } from './commands/prune.js';
import { registerRestore } from './commands/restore.js';
import { registerSnapshot } from './commands/snapshot.js';
import { registerStatus } from './commands/status.js';
import { registerVerify } from './commands/verify.js';
import { registerServe } from './commands/serve.js';
import { registerWebhook } from './commands/webhook.js';
import { registerWorker } from './commands/worker.js';
import { redactFlagValues, type CliContext, type Register } from './options.js';

const COMMANDS: readonly Register[] = [
  registerServe,
  registerWebhook,
  registerWorker,
  registerSnapshot,
  registerList,
  registerVerify,
  registerRestore,
  registerDrill,
  registerStatus,
  registerAuditConfig,
  registerPrune,
  registerLifecycle,
  registerConfig,
];

function buildProgram(context: CliContext): Command {
  const program = new Command('etcd-autobackup')
    .description('Change-triggered, verified etcd backups for Kubernetes clusters')
    .version(VERSION)
    .showHelpAfterError('(add --help for usage)')
    // Subcommands created with .command() inherit both settings.
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(redactFlagValues(text)) });
  for (const register of COMMANDS) register(program, context);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write(`${signal}: stopping and cleaning up (again to exit at once)\n`);
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const context: CliContext = { signal: controller.signal, print: (text) => process.stdout.write(`${text}\n`) };
  try {
    await buildProgram(context).parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2; // commander already printed why
    if (err instanceof ConfigError) {
      process.stderr.write(`${redactFlagValues(err.message)}\n`);
      return 2;
    }
    process.stderr.write(`error: ${redactFlagValues(messageOf(err))}\n`);
    return controller.signal.aborted ? 130 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

process.exitCode = await main(process.argv);
