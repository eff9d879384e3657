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
  const base = `${prefix}:ledger:${cluster}:${window.id}`;
  return [base, `${base}:samples`];
}

const RECORD = `
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
local n = tonumber(ARGV[3])
for i = 0, n - 1 do
  redis.call('HINCRBY', KEYS[1], 'n:' .. ARGV[4 + 2 * i], ARGV[5 + 2 * i])
end
local max = tonumber(ARGV[2])
for i = 4 + 2 * n, #ARGV do
  if redis.call('SCARD', KEYS[2]) >= max then break end
  redis.call('SADD', KEYS[2], ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return gen
`;

const TAKE = `
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
if gen ~= tonumber(ARGV[1]) then return {gen, {}, {}} end
local fields = redis.call('HGETALL', KEYS[1])
local samples = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'gen', gen + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {gen, fields, samples}
`;

/**
 * Counts triggers into the window's open generation and returns that generation: the caller must
 * then make sure the job of (window, generation) exists.
 */
export async function recordInLedger(
  redis: Redis,
  keys: [string, string],
  counts: Counts,
  samples: string[],
): Promise<number> {
  const pairs = Object.entries(counts).filter(([, n]) => (n ?? 0) > 0) as [TriggerSource, number][];
  const args = [
    String(LEDGER_TTL_MS),
    String(MAX_SAMPLES),
    String(pairs.length),
    ...pairs.flatMap(([s, n]) => [s, String(n)]),
    ...samples.slice(0, MAX_SAMPLES),
  ];
  const gen = await runScript(redis, RECORD, keys, args);
  return Number(gen);
}

export interface Taken {
  /** True when this call closed `generation`; false when it was already closed (a retry, or a redundant job). */
  taken: boolean;
  counts: Counts;
  samples: string[];
}

/** Closes `generation` and returns what was counted into it. */
export async function takeFromLedger(redis: Redis, keys: [string, string], generation: number): Promise<Taken> {
  const reply = (await runScript(redis, TAKE, keys, [String(generation), String(LEDGER_TTL_MS)])) as [
    number,
    string[],
    string[],
  ];
  const [gen, fields, samples] = reply;
  if (Number(gen) !== generation) return { taken: false, counts: {}, samples: [] };
  const counts: Counts = {};
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i] as string;
    const source = name.slice(2) as TriggerSource;
    if (name.startsWith('n:') && TRIGGER_SOURCES.includes(source)) counts[source] = Number(fields[i + 1]);
  }
  return { taken: true, counts, samples: samples.sort() };
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
