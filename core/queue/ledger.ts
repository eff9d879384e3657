/**
 * The per-window ledger in Redis: what triggered a window's snapshot, and which generation of the
 * window's job is still open. It is what makes deduplication lossless:
 *
 * - a recorder counts its triggers into the window's open generation (one script call) and makes
 *   sure that generation's job exists;
 * - the worker, just before it snapshots, takes the counts and closes the generation in one
 *   atomic step. A trigger counted before that step is covered by this snapshot; one counted
 *   after it lands in the next generation, whose job id is new, so BullMQ cannot swallow it as a
 *   duplicate of the job that already ran.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { TRIGGER_SOURCES, type TriggerSource } from '../cause.js';
import type { DebounceWindow } from './window.js';

/** Ledgers outlive any job of their window, so a generation is never reused for a window. */
export const LEDGER_TTL_MS = 7 * 24 * 3_600_000;
export const MAX_SAMPLES = 5;

export type Counts = Partial<Record<TriggerSource, number>>;

export function ledgerKeys(prefix: string, cluster: string, window: Pick<DebounceWindow, 'id'>): [string, string] {
  const base = `${ledgerBase(prefix, cluster)}${window.id}`;
  return [base, `${base}:samples`];
}

function ledgerBase(prefix: string, cluster: string): string {
  return `${prefix}:ledger:${cluster}:`;
}

/** Who closed each generation of a window (the job id), so a job folded into another knows it. */
function takersKey(prefix: string, cluster: string, window: Pick<DebounceWindow, 'id'>): string {
  return `${ledgerBase(prefix, cluster)}${window.id}:by`;
}

/** The cluster's windows with an open generation holding counts, scored by the window's end. */
export function openWindowsKey(prefix: string, cluster: string): string {
  return `${prefix}:open:${cluster}`;
}

const RECORD = `
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
local n = tonumber(ARGV[5])
for i = 0, n - 1 do
  redis.call('HINCRBY', KEYS[1], 'n:' .. ARGV[6 + 2 * i], ARGV[7 + 2 * i])
end
local max = tonumber(ARGV[2])
for i = 6 + 2 * n, #ARGV do
  if redis.call('SCARD', KEYS[2]) >= max then break end
  redis.call('SADD', KEYS[2], ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
return gen
`;

// KEYS: hash, samples, takers, open set. ARGV: generation, ttl, taker, window id.
const TAKE = `
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
if gen ~= tonumber(ARGV[1]) then return {gen, {}, {}, redis.call('HGET', KEYS[3], ARGV[1]) or ''} end
local fields = redis.call('HGETALL', KEYS[1])
local samples = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'gen', gen + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[3], gen, ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[4])
return {gen, fields, samples, ARGV[3]}
`;

// KEYS: open set. ARGV: now, taker, ledger key base, ttl. Closes the open generation of every
// window that has ended; returns {id, gen, fields, samples} per window.
const FOLD = `
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  local k = ARGV[3] .. id
  local gen = tonumber(redis.call('HGET', k, 'gen') or '0')
  local fields = redis.call('HGETALL', k)
  local samples = redis.call('SMEMBERS', k .. ':samples')
  redis.call('DEL', k, k .. ':samples')
  redis.call('HSET', k, 'gen', gen + 1)
  redis.call('PEXPIRE', k, ARGV[4])
  redis.call('HSET', k .. ':by', gen, ARGV[2])
  redis.call('PEXPIRE', k .. ':by', ARGV[4])
  redis.call('ZREM', KEYS[1], id)
  table.insert(out, {id, gen, fields, samples})
end
return out
`;

/**
 * Counts triggers into the window's open generation and returns that generation: the caller must
 * then make sure the job of (window, generation) exists.
 */
export async function recordInLedger(
  redis: Redis,
  prefix: string,
  cluster: string,
  window: Pick<DebounceWindow, 'id' | 'end'>,
  counts: Counts,
  samples: string[],
): Promise<number> {
  const pairs = Object.entries(counts).filter(([, n]) => (n ?? 0) > 0) as [TriggerSource, number][];
  const args = [
    String(LEDGER_TTL_MS),
    String(MAX_SAMPLES),
    String(window.end),
    window.id,
    String(pairs.length),
    ...pairs.flatMap(([s, n]) => [s, String(n)]),
    ...samples.slice(0, MAX_SAMPLES),
  ];
  const keys = [...ledgerKeys(prefix, cluster, window), openWindowsKey(prefix, cluster)];
  const gen = await runScript(redis, RECORD, keys, args);
  return Number(gen);
}

export interface Taken {
  /** True when this call closed `generation`; false when it was already closed (a retry, or a redundant job). */
  taken: boolean;
  /** The job id that closed the generation (this caller when `taken`); empty when unknown. */
  by: string;
  counts: Counts;
  samples: string[];
}

/** Closes `generation` on behalf of job `taker` and returns what was counted into it. */
export async function takeFromLedger(
  redis: Redis,
  prefix: string,
  cluster: string,
  window: Pick<DebounceWindow, 'id'>,
  generation: number,
  taker: string,
): Promise<Taken> {
  const keys = [
    ...ledgerKeys(prefix, cluster, window),
    takersKey(prefix, cluster, window),
    openWindowsKey(prefix, cluster),
  ];
  const reply = (await runScript(redis, TAKE, keys, [String(generation), String(LEDGER_TTL_MS), taker, window.id])) as [
    number,
    string[],
    string[],
    string,
  ];
  const [gen, fields, samples, by] = reply;
  if (Number(gen) !== generation) return { taken: false, by, counts: {}, samples: [] };
  return { taken: true, by, counts: countsOf(fields), samples: samples.sort() };
}

/** The job id that closed `generation` of `window`, or undefined while it is open (or unknown). */
export async function takerOf(
  redis: Redis,
  prefix: string,
  cluster: string,
  window: Pick<DebounceWindow, 'id'>,
  generation: number,
): Promise<string | undefined> {
  return (await redis.hget(takersKey(prefix, cluster, window), String(generation))) ?? undefined;
}

export interface Folded {
  /** Windows whose open generation was closed into the caller's snapshot. */
  windows: number;
  counts: Counts;
  samples: string[];
}

/**
 * Closes, on behalf of job `taker`, the open generation of every window of the cluster that ended
 * by `nowMs`: the snapshot about to start covers their changes, and their own jobs, finding their
 * generation closed by another job, finish without a snapshot. This is what keeps snapshots
 * slower than the window from piling up.
 */
export async function foldEnded(
  redis: Redis,
  prefix: string,
  cluster: string,
  nowMs: number,
  taker: string,
): Promise<Folded> {
  const reply = (await runScript(
    redis,
    FOLD,
    [openWindowsKey(prefix, cluster)],
    [String(nowMs), taker, ledgerBase(prefix, cluster), String(LEDGER_TTL_MS)],
  )) as [string, number, string[], string[]][];
  const counts: Counts = {};
  const samples: string[] = [];
  for (const [, , fields, s] of reply) {
    for (const [source, n] of Object.entries(countsOf(fields)) as [TriggerSource, number][])
      counts[source] = (counts[source] ?? 0) + n;
    for (const x of s.sort()) if (samples.length < MAX_SAMPLES && !samples.includes(x)) samples.push(x);
  }
  return { windows: reply.length, counts, samples };
}

function countsOf(fields: string[]): Counts {
  const counts: Counts = {};
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i] as string;
    const source = name.slice(2) as TriggerSource;
    if (name.startsWith('n:') && TRIGGER_SOURCES.includes(source)) counts[source] = Number(fields[i + 1]);
  }
  return counts;
}

const shas = new Map<string, string>();

/** EVALSHA, loading the script with EVAL only when Redis does not know it yet (after a restart). */
export async function runScript(redis: Redis, script: string, keys: string[], args: string[]): Promise<unknown> {
  let sha = shas.get(script);
  if (sha === undefined) {
    sha = createHash('sha1').update(script).digest('hex');
    shas.set(script, sha);
  }
  try {
    return await redis.evalsha(sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return redis.eval(script, keys.length, ...keys, ...args);
  }
}

export interface OpenWindow {
  id: string;
  /** When the window ends (ms); its snapshot runs shortly after. */
  endsAt: number;
  counts: Counts;
}

/** The cluster's windows holding triggers no snapshot has taken yet (read only; for `status`). */
export async function openWindows(redis: Redis, prefix: string, cluster: string): Promise<OpenWindow[]> {
  const flat = await redis.zrange(openWindowsKey(prefix, cluster), '0', '-1', 'WITHSCORES');
  const out: OpenWindow[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const id = flat[i] as string;
    const hash = await redis.hgetall(`${ledgerBase(prefix, cluster)}${id}`);
    out.push({ id, endsAt: Number(flat[i + 1]), counts: countsOf(Object.entries(hash).flat()) });
  }
  return out;
}
