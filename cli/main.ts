#!/usr/bin/env node
/**
 * The etcd-autobackup command. Each subcommand lives in cli/commands/<name>.ts and registers
 * itself; adding one is a new file and one line in COMMANDS. Exit codes: 0 ok, 1 failure,
 * 2 wrong usage or configuration, 130 interrupted twice.
 */
// First: it must apply before other modules allocate (see the module).
import '../core/young-generation.js';
import { Command, CommanderError } from 'commander';
import { ConfigError, messageOf } from '../core/errors.js';
import { VERSION } from '../core/version.js';
import { redactFlagValues, type CliContext, type Register } from './options.js';

/**
 * Each command's module, loaded only when that command runs: serve, webhook and worker pull in
 * BullMQ, Redis, Express and the Kubernetes client, ~0.5 s of CPU at start that `restore` or
 * `snapshot` never use (it was a third of a restore's own CPU time). Help, an unknown command and
 * a bare `etcd-autobackup` load them all, in this order, which is the order help lists them.
 */
/** Name (and aliases, `|`-separated), and the loader of its module. */
const COMMANDS: readonly (readonly [string, () => Promise<Register>])[] = [
  ['serve', async () => (await import('./commands/serve.js')).registerServe],
  ['webhook', async () => (await import('./commands/webhook.js')).registerWebhook],
  ['worker', async () => (await import('./commands/worker.js')).registerWorker],
  ['snapshot', async () => (await import('./commands/snapshot.js')).registerSnapshot],
  ['list|ls', async () => (await import('./commands/list.js')).registerList],
  ['verify', async () => (await import('./commands/verify.js')).registerVerify],
  ['decrypt', async () => (await import('./commands/decrypt.js')).registerDecrypt],
  ['restore', async () => (await import('./commands/restore.js')).registerRestore],
  ['history', async () => (await import('./commands/history.js')).registerHistory],
  ['drill', async () => (await import('./commands/drill.js')).registerDrill],
  ['drill-prepare', async () => (await import('./commands/drill-pod.js')).registerDrillPrepare],
  ['drill-check', async () => (await import('./commands/drill-pod.js')).registerDrillCheck],
  ['status', async () => (await import('./commands/status.js')).registerStatus],
  ['audit-config', async () => (await import('./commands/audit-config.js')).registerAuditConfig],
  ['prune', async () => (await import('./commands/prune.js')).registerPrune],
  ['lifecycle', async () => (await import('./commands/lifecycle.js')).registerLifecycle],
  ['config', async () => (await import('./commands/config.js')).registerConfig],
];

/** The commands to load for `argv`: the one named first, or all when none is (help, typos, nothing). */
function commandsFor(argv: readonly string[]): readonly (() => Promise<Register>)[] {
  const named = COMMANDS.find(([names]) => names.split('|').includes(argv[2] ?? ''));
  return named ? [named[1]] : COMMANDS.map(([, load]) => load);
}

async function buildProgram(context: CliContext, argv: readonly string[]): Promise<Command> {
  const program = new Command('etcd-autobackup')
    .description('Change-triggered, verified etcd backups for Kubernetes clusters')
    .version(VERSION)
    .showHelpAfterError('(add --help for usage)')
    // Subcommands created with .command() inherit both settings.
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(redactFlagValues(text)) });
  const registers = await Promise.all(commandsFor(argv).map((load) => load()));
  for (const register of registers) register(program, context);
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
    await (await buildProgram(context, argv)).parseAsync(argv);
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
