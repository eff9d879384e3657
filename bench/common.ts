/** What the benchmarks share: env knobs, child processes timed from outside, and the figures' format. */
import { spawn } from 'node:child_process';

export const MiB = 1024 * 1024;

/** An integer env knob (BENCH_ROUNDS, BENCH_SIZE_MIB, ...): a wrong value stops the bench naming it. */
export function envInt(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min} (got "${raw}")`);
  return n;
}

export interface Child {
  code: number | null;
  stdout: string;
  stderr: string;
  wallMs: number;
}

/** Runs a command to its end, keeping all of stdout (a result line) and the tail of stderr (a failure's cause). */
export function runChild(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Child> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, wallMs: performance.now() - started }));
  });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;
export const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
