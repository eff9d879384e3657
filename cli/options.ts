/**
 * The options every subcommand shares: one per config setting, plus --config. Their values go to
 * loadConfig untouched, so precedence, parsing and error wording live in core/config only.
 */
import { Option, type Command } from 'commander';
import { ENV_PREFIX, envName, loadConfig, SETTINGS, type Config, type Setting } from '../core/config/index.js';
import { createLogger, type Logger } from '../core/logger.js';

const GROUP = 'Configuration (flag > env > --config file > default):';
const CONFIG_ENV = `${ENV_PREFIX}CONFIG`;

/** What each command gets besides its own arguments. */
export interface CliContext {
  /** Aborted on SIGINT/SIGTERM, so that commands clean up instead of dying mid-write. */
  signal: AbortSignal;
  /** Command results (stdout); logs and progress go to stderr. */
  print: (text: string) => void;
}

/** A subcommand module: adds itself to the program. */
export type Register = (program: Command, context: CliContext) => void;

/** Adds --config and one option per setting to `cmd`. */
export function withConfigOptions(cmd: Command): Command {
  cmd.addOption(new Option('--config <file>', `YAML config file [env ${CONFIG_ENV}]`).helpGroup(GROUP));
  for (const setting of SETTINGS) for (const option of settingOptions(setting)) cmd.addOption(option);
  return cmd;
}

function settingOptions(setting: Setting): Option[] {
  const help = `${setting.help} [env ${envName(setting.flag)}]`;
  if (setting.kind === 'bool') {
    // A plain switch and its --no- form: an optional value would swallow the next argument
    // (`verify --watch latest`). Unset, both leave the value to env, file and defaults.
    return [
      new Option(`--${setting.flag}`, help).helpGroup(GROUP),
      new Option(`--no-${setting.flag}`, `turn off --${setting.flag}`).helpGroup(GROUP),
    ];
  }
  const arg = setting.kind === 'list' ? '<list>' : setting.kind === 'int' ? '<n>' : '<value>';
  return [new Option(`--${setting.flag} ${arg}`, help).helpGroup(GROUP)];
}

/** The setting flags given on the command line, keyed by flag name as loadConfig expects. */
export function settingFlags(cmd: Command): Record<string, string | boolean | undefined> {
  const values = cmd.opts<Record<string, unknown>>();
  const flags: Record<string, string | boolean | undefined> = {};
  for (const setting of SETTINGS) {
    const value = values[new Option(`--${setting.flag}`).attributeName()];
    if (typeof value === 'string' || typeof value === 'boolean') flags[setting.flag] = value;
  }
  return flags;
}

/** The effective config of a command and a logger (stderr) set up from it. */
export function setup(cmd: Command): { config: Config; log: Logger } {
  const file = cmd.opts<{ config?: string }>().config;
  const config = loadConfig({ file, env: process.env, flags: settingFlags(cmd) });
  return { config, log: createLogger({ level: config.log.level, format: config.log.format }) };
}

/**
 * `text` with the value of every `--flag=value` blanked: commander echoes a mistyped flag whole,
 * and a mistyped secret flag is still a secret. Redaction is by field, never by searching for a
 * secret's text, which blanks innocent words (a password `b` turned `backups` into
 * `[redacted]ackups`) and says which letters the secret has; config errors never include the
 * value of a secret setting in the first place (core/config/load.ts).
 */
export function redactFlagValues(text: string): string {
  return text.replace(/(--[A-Za-z0-9][A-Za-z0-9-]*)=[^\s']+/g, '$1=[redacted]');
}
