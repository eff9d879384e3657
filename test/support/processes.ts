/**
 * The long-running CLI commands (`serve`, `webhook`, `worker`) as child processes, the way an
 * operator runs them: started from source on a free loopback port, their output kept so that a
 * failing assertion can show what each process said, and every one of them killed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from './ports.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Output kept per stream; older output is dropped (a burst can log a lot). */
const KEEP_CHARS = 256 * 1024;

export type LongCommand = 'serve' | 'webhook' | 'worker';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One pino JSON line of a process's stderr. */
export interface LogLine {
  level?: number;
  msg?: string;
  [field: string]: unknown;
}

export interface CliProcess {
  /** A name for messages, e.g. `webhook-1`. */
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** `http://127.0.0.1:<port>` of its HTTP server (webhooks, health, metrics). */
  readonly url: string;
  /** Resolves when the process has exited, with its code or signal. */
  readonly exited: Promise<Exit>;
  /** Undefined while it runs. */
  exit(): Exit | undefined;
  stdout(): string;
  stderr(): string;
  /** The JSON log lines of stderr seen so far (non-JSON lines are skipped). */
  logs(): LogLine[];
  /** Waits for a log line matching `match`, failing early (with the stderr tail) if the process exits. */
  waitForLog(match: (line: LogLine) => boolean, what: string, timeoutMs?: number): Promise<LogLine>;
  /** Sends a signal; no-op once it has exited. */
  signal(signal: NodeJS.Signals): void;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<Exit>;
}

export interface StartOptions {
  /** Name for messages; default the command. */
  name?: string;
  /** Extra variables on top of a process.env cleaned of ETCD_AUTOBACKUP_*. */
  env?: Record<string, string>;
  /** How long to wait for the "running" banner. */
  timeoutMs?: number;
  /** Address to listen on instead of 127.0.0.1 (an IPv6 one is passed without brackets, as `$(POD_IP):port` expands). */
  listenHost?: string;
}

/**
 * Tracks every process a test starts, so that `killAll` in a finally block ends them whatever
 * failed, and `describe` puts their output into an assertion message.
 */
export class Processes {
  private readonly all: CliProcess[] = [];

  /**
   * Starts `etcd-autobackup <command> --listen 127.0.0.1:<free port> ...args` (or options.listenHost) and waits until it
   * prints its "running" banner on stdout.
   */
  async start(command: LongCommand, args: readonly string[], options: StartOptions = {}): Promise<CliProcess> {
    const port = await freePort();
    const host = options.listenHost ?? '127.0.0.1';
    const urlHost = host.includes(':') ? `[${host}]` : host;
    const proc = spawnCli(command, ['--listen', `${host}:${port}`, ...args], `http://${urlHost}:${port}`, options);
    this.all.push(proc);
    const banner =
      command === 'serve' ? 'etcd-autobackup webhook + worker for cluster' : `etcd-autobackup ${command} for cluster`;
    try {
      await waitFor(
        `${proc.name} to be running`,
        () => {
          if (proc.exit()) throw new Error(`${proc.name} exited early`);
          return Promise.resolve(proc.stdout().includes(banner));
        },
        options.timeoutMs ?? 60_000,
        50,
      );
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${this.describe()}`, { cause: err });
    }
    return proc;
  }

  /** Every process's name, state and stderr tail, for assertion messages. */
  describe(tailChars = 2_000): string {
    return this.all.map((p) => describeProcess(p, tailChars)).join('\n');
  }

  /** SIGKILLs every process still running and waits for each to exit. */
  async killAll(): Promise<void> {
    await Promise.all(this.all.map((p) => p.kill()));
  }
}

export function describeProcess(p: CliProcess, tailChars = 2_000): string {
  const exit = p.exit();
  const state = exit ? `exited (code ${exit.code}, signal ${exit.signal})` : 'running';
  return `--- ${p.name} [pid ${p.pid}, ${state}] stderr tail:\n${p.stderr().slice(-tailChars)}`;
}

function spawnCli(command: LongCommand, args: readonly string[], url: string, options: StartOptions): CliProcess {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_AUTOBACKUP_')) env[k] = v;
  Object.assign(env, options.env);
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli', 'main.ts'), command, ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const name = options.name ?? command;
  let stdout = '';
  let stderr = '';
  let partial = '';
  const lines: LogLine[] = [];
  child.stdout?.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-KEEP_CHARS)));
  child.stderr?.on('data', (d: Buffer) => {
    const text = d.toString();
    stderr = (stderr + text).slice(-KEEP_CHARS);
    const parts = (partial + text).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // Not a log line (a stack trace, a warning from Node): the raw stderr keeps it.
      }
    }
  });
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
    // Spawning itself failed (no node binary): report it as an exit so nobody waits forever.
    child.once('error', () => {
      exit ??= { code: null, signal: null };
      resolve(exit);
    });
  });
  const proc: CliProcess = {
    name,
    child,
    pid: child.pid ?? -1,
    url,
    exited,
    exit: () => exit,
    stdout: () => stdout,
    stderr: () => stderr,
    logs: () => lines,
    async waitForLog(match, what, timeoutMs = 30_000) {
      try {
        return await waitFor(
          `${name}: ${what}`,
          () => {
            const found = lines.find(match);
            if (found) return Promise.resolve(found);
            if (exit) throw new Error(`${name} exited (code ${exit.code}, signal ${exit.signal})`);
            return Promise.resolve(undefined);
          },
          timeoutMs,
          50,
        );
      } catch (err) {
        throw new Error(`${err instanceof Error ? err.message : String(err)}\n${describeProcess(proc)}`, {
          cause: err,
        });
      }
    },
    signal(sig) {
      if (!exit) child.kill(sig);
    },
    async kill() {
      if (!exit) child.kill('SIGKILL');
      return exited;
    },
  };
  return proc;
}

/** The value of a Prometheus sample `name{labels}` in a /metrics text; undefined when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const pair of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      have.set(pair[1] as string, pair[2] as string);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[4]);
  }
  return undefined;
}

/** GET `<url>/metrics` of a process and read one sample. */
export async function readMetric(
  proc: Pick<CliProcess, 'url'>,
  name: string,
  labels?: Record<string, string>,
): Promise<number | undefined> {
  const res = await fetch(`${proc.url}/metrics`);
  return metricValue(await res.text(), name, labels);
}
