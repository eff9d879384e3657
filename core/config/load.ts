/**
 * Builds the effective config: schema defaults < YAML file < ETCD_AUTOBACKUP_* env vars < flags.
 * Every wrong value is reported at once, each naming its field and where it can be set.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLError } from 'yaml';
import type { z } from 'zod';
import { ConfigError, messageOf } from '../errors.js';
import { configSchema, type Config } from './schema.js';
import { envName, SETTINGS, ENV_PREFIX, type Setting } from './settings.js';

type Tree = Record<string, unknown>;

export interface LoadOptions {
  /** Path of a YAML config file (from --config or ETCD_AUTOBACKUP_CONFIG). */
  file?: string | undefined;
  /** Environment to read ETCD_AUTOBACKUP_* from; process.env by default. */
  env?: NodeJS.ProcessEnv;
  /** Flag values keyed by flag name (`s3-endpoint`), as strings or booleans from the command line. */
  flags?: Record<string, string | boolean | undefined>;
  /** Extra values keyed by config path, applied last (used by commands with fixed settings). */
  overrides?: Tree;
}

export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const problems: string[] = [];
  const file = options.file ?? env[`${ENV_PREFIX}CONFIG`];
  const tree: Tree = file ? readConfigFile(file) : {};

  for (const setting of SETTINGS) {
    const raw = env[envName(setting.flag)];
    if (raw !== undefined && raw !== '') apply(tree, setting, raw, `env ${envName(setting.flag)}`, problems);
  }
  for (const setting of SETTINGS) {
    const raw = options.flags?.[setting.flag];
    if (raw !== undefined) apply(tree, setting, raw, `flag --${setting.flag}`, problems);
  }
  for (const [path, value] of Object.entries(options.overrides ?? {})) setPath(tree, path, value);

  const result = configSchema.safeParse(tree);
  if (!result.success) problems.push(...describeIssues(result.error.issues));
  if (problems.length > 0 || !result.success) {
    throw new ConfigError(`invalid configuration${file ? ` (file ${file})` : ''}`, problems);
  }
  return result.data;
}

function readConfigFile(file: string): Tree {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${messageOf(err)}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid YAML${yamlErrorPlace(err)}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${file} must hold a YAML mapping (keys like cluster:, etcd:, store:)`);
  }
  return parsed as Tree;
}

/**
 * Where a YAML error is, without its message: the yaml library quotes the offending line, and in
 * a config file that line may hold a password.
 */
function yamlErrorPlace(err: unknown): string {
  if (!(err instanceof YAMLError)) return '';
  const at = err.linePos?.[0];
  const place = at === undefined ? '' : ` at line ${at.line}, column ${at.col}`;
  return `${place} (${err.code}); check the indentation and quoting there`;
}

function apply(tree: Tree, setting: Setting, raw: string | boolean, source: string, problems: string[]): void {
  const value = convert(setting, raw);
  if (value === undefined) {
    const shown = setting.secret ? '' : ` (got "${String(raw)}")`;
    problems.push(`${setting.path}: ${source} expects ${expectation(setting)}${shown}`);
    return;
  }
  setPath(tree, setting.path, value);
}

function convert(setting: Setting, raw: string | boolean): unknown {
  if (typeof raw === 'boolean') return setting.kind === 'bool' ? raw : undefined;
  switch (setting.kind) {
    case 'string':
      return raw;
    case 'list':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    case 'int':
      return /^-?\d+$/.test(raw.trim()) ? Number(raw) : undefined;
    case 'bool': {
      const t = raw.trim().toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(t)) return true;
      if (['false', '0', 'no', 'off'].includes(t)) return false;
      return undefined;
    }
  }
}

function expectation(setting: Setting): string {
  return { string: 'a text value', list: 'a comma-separated list', int: 'a whole number', bool: 'true or false' }[
    setting.kind
  ];
}

function setPath(tree: Tree, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = tree;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Tree;
  }
  node[keys[keys.length - 1] as string] = value;
}

/** zod issues as lines that say which field, what it expects and where to set it. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    const dotted = issue.path.filter((p) => typeof p === 'string').join('.');
    const setting = SETTINGS.find((s) => s.path === dotted);
    const where = setting ? ` (flag --${setting.flag}, env ${envName(setting.flag)})` : '';
    if (issue.code === 'unrecognized_keys') {
      const at = path ? `${path}: ` : '';
      return `${at}unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}: check the spelling against docs/configuration.md`;
    }
    return `${path || '(root)'}: ${issue.message}${where}`;
  });
}

/** The config with every secret replaced, safe to print or log. */
export function redactConfig(config: Config): Config {
  const copy = structuredClone(config) as unknown as Tree;
  for (const setting of SETTINGS.filter((s) => s.secret)) {
    const keys = setting.path.split('.');
    let node: unknown = copy;
    for (const key of keys.slice(0, -1)) node = (node as Tree | undefined)?.[key];
    const last = keys[keys.length - 1] as string;
    if (node && typeof node === 'object' && (node as Tree)[last] !== undefined) (node as Tree)[last] = '[redacted]';
  }
  return copy as unknown as Config;
}
