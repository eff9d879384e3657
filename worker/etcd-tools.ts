/**
 * The one place that decides which etcd tool reads and restores snapshots. etcd 3.5 moved
 * `snapshot restore` and `snapshot status` from etcdctl to etcdutl and 3.6 removed them from
 * etcdctl, so etcdutl is preferred whenever it is on PATH; etcdctl (API v3) is the fallback for
 * hosts that only have 3.4. The argv builders are pure so both spellings are tested by example;
 * `findEtcdTools` and `runTool` are the I/O.
 */
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';

export type ToolName = 'etcdutl' | 'etcdctl';

/** The tool chosen for snapshot restore/status, as recorded in verify, restore and drill results. */
export interface SnapshotTool {
  name: ToolName;
  /** Resolved path or the bare name as configured. */
  path: string;
  /** e.g. "3.6.0"; "unknown" when `version` printed nothing recognisable. */
  version: string;
}

export interface RestoreArgs {
  file: string;
  dataDir: string;
  name?: string;
  initialCluster?: string;
  initialClusterToken?: string;
  initialAdvertisePeerUrls?: string;
  /** For a copied db file without etcd's hash trailer; never needed for our snapshots. */
  skipHashCheck?: boolean;
}

/** `snapshot restore <file> --data-dir ...`: the same flags in etcdutl 3.5/3.6 and etcdctl 3.4. */
export function restoreArgv(args: RestoreArgs): string[] {
  const argv = ['snapshot', 'restore', args.file, '--data-dir', args.dataDir];
  if (args.name) argv.push('--name', args.name);
  if (args.initialCluster) argv.push('--initial-cluster', args.initialCluster);
  if (args.initialClusterToken) argv.push('--initial-cluster-token', args.initialClusterToken);
  if (args.initialAdvertisePeerUrls) argv.push('--initial-advertise-peer-urls', args.initialAdvertisePeerUrls);
  if (args.skipHashCheck) argv.push('--skip-hash-check');
  return argv;
}

export function statusArgv(file: string): string[] {
  return ['snapshot', 'status', file, '-w', 'json'];
}

/** The version out of `etcdutl version` / `etcdctl version` ("etcdutl version: 3.6.0\nAPI version: 3.6"). */
export function parseToolVersion(out: string): string {
  return /^\s*(?:etcdutl|etcdctl) version:\s*v?(\d+\.\d+\.\d+\S*)/m.exec(out)?.[1] ?? 'unknown';
}

/** Whether `name` (bare or a path) is an executable file, looking through PATH for a bare name. */
export async function findOnPath(name: string, pathEnv = process.env.PATH ?? ''): Promise<string | undefined> {
  const candidates =
    name.includes('/') || isAbsolute(name)
      ? [name]
      : pathEnv
          .split(delimiter)
          .filter(Boolean)
          .map((d) => join(d, name));
  for (const c of candidates) {
    try {
      await access(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return undefined;
}

export interface FindToolsOptions {
  /** etcdctl from the config (etcd.etcdctl); used only when no etcdutl is found. */
  etcdctl: string;
  /** etcdutl name or path; "etcdutl" (looked up on PATH) by default. */
  etcdutl?: string;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

/** etcdutl when present, else etcdctl; fails naming both when neither can be run. */
export async function findEtcdTools(options: FindToolsOptions): Promise<SnapshotTool> {
  const env = options.env ?? process.env;
  const utl = await findOnPath(options.etcdutl ?? 'etcdutl', env.PATH ?? '');
  if (utl) {
    return { name: 'etcdutl', path: utl, version: await versionOf('etcdutl', utl, options.signal, env) };
  }
  const ctl = await findOnPath(options.etcdctl, env.PATH ?? '');
  if (!ctl) {
    throw new Error(
      `cannot run etcdutl or etcdctl: neither "etcdutl" nor "${options.etcdctl}" was found; install etcdutl (etcd 3.5+) or etcdctl 3.4, or set --etcdctl (etcd.etcdctl)`,
    );
  }
  return { name: 'etcdctl', path: ctl, version: await versionOf('etcdctl', ctl, options.signal, env) };
}

/** A tool whose `version` fails may still restore; its own error then says more than ours would. */
async function versionOf(name: ToolName, path: string, signal: AbortSignal | undefined, env: NodeJS.ProcessEnv) {
  try {
    return parseToolVersion(await runTool({ name, path, version: 'unknown' }, ['version'], signal, env));
  } catch {
    return 'unknown';
  }
}

const KILL_GRACE_MS = 5_000;

/**
 * Runs the tool (etcdctl with ETCDCTL_API=3) and returns stdout; a failure carries its last words.
 * On abort the child is sent SIGTERM and the promise settles only once it has exited: execFile's own
 * `signal` option rejects at once, and a caller that then removes the tool's data dir would race a
 * restore that is still writing into it. A tool that ignores SIGTERM gets SIGKILL after a grace period.
 */
export async function runTool(
  tool: SnapshotTool,
  args: string[],
  signal?: AbortSignal,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const child = execFile(
      tool.path,
      args,
      { env: tool.name === 'etcdctl' ? { ...env, ETCDCTL_API: '3' } : env, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        signal?.removeEventListener('abort', stop);
        clearTimeout(escalate);
        if (signal?.aborted)
          return reject(
            signal.reason instanceof Error
              ? signal.reason
              : new Error(`${tool.name} stopped`, { cause: signal.reason }),
          );
        if (!err) return resolve(stdout);
        if ((err as NodeJS.ErrnoException).code === 'ENOENT')
          return reject(new Error(`cannot run ${tool.name}: "${tool.path}" not found`));
        const said = lastLines(stderr || stdout);
        reject(
          new Error(`${tool.name} ${args.slice(0, 2).join(' ')} failed${said ? `: ${said}` : ` (${err.message})`}`, {
            cause: err,
          }),
        );
      },
    );
    let escalate: NodeJS.Timeout | undefined;
    function stop() {
      child.kill('SIGTERM');
      escalate = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS).unref();
    }
    signal?.addEventListener('abort', stop, { once: true });
  });
}

export function lastLines(text: string, n = 3): string {
  return text.trim().split('\n').slice(-n).join(' | ').slice(0, 1000);
}
