/**
 * Runs the etcd-autobackup CLI from source as a child process, the way an operator would, with an
 * environment free of the caller's ETCD_AUTOBACKUP_* settings.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface CliResult {
  code: number | null;
  stdout: string;
  /** stdout as bytes, for commands that write binary data. */
  stdoutBytes: Buffer;
  stderr: string;
}

export interface CliOptions {
  /** ETCD_AUTOBACKUP_* and other variables for the child, on top of a cleaned process.env. */
  env?: Record<string, string>;
  cwd?: string;
  /** Killed after this long, so a hung CLI fails its test instead of the whole run. */
  timeoutMs?: number;
  /** Written to the child's stdin, which is otherwise closed. */
  input?: Buffer;
}

export async function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_AUTOBACKUP_')) env[k] = v;
  Object.assign(env, options.env);
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli', 'main.ts'), ...args], {
    cwd: options.cwd ?? ROOT,
    env,
    stdio: [options.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  if (options.input) {
    // A command that fails early stops reading; the rest of the input then has nowhere to go.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input);
  }
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => out.push(d));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c) => resolve(c));
    });
    const stdoutBytes = Buffer.concat(out);
    return { code, stdout: stdoutBytes.toString(), stdoutBytes, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the CLI and fails with its output when the exit code is not 0. */
export async function runCliOk(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const r = await runCli(args, options);
  if (r.code !== 0)
    throw new Error(`etcd-autobackup ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** The retention flags of a policy that keeps only the newest `n` snapshots (every other rule 0). */
export function keepLastOnly(n: number): string[] {
  return [
    '--keep-last',
    String(n),
    '--keep-hourly',
    '0',
    '--keep-daily',
    '0',
    '--keep-weekly',
    '0',
    '--keep-monthly',
    '0',
  ];
}
