/**
 * Each encryption stage alone over the same snapshot file, beside a pass-through read of it, in
 * alternating rounds: what the stage itself adds, as a fraction of the etcdctl floor's time of the
 * same run. The end-to-end variants (file-none-age against file-none) measure the same thing as
 * the difference of two noisy medians, which on a shared machine swings by more than the stage
 * costs; this isolates it. The verdict uses the CPU time the stage adds (user + system, less the
 * read-only pass): on a machine shared with other work, wall time of an in-process loop mostly
 * measures the neighbours, while CPU time is what the stage costs. In the backup pipeline the stage
 * runs on the main thread between reads, so that CPU time bounds the wall time it can add. Peak RSS
 * growth is sampled while each stage runs and compared with the read-only pass's.
 *
 * The verdict takes each stage's least CPU time over the rounds, less the read-only pass's least:
 * the work is the same in every round and neighbours can only add to it, so the minimum is the
 * estimate of what the stage costs (medians of 5 rounds moved 2-4x between runs at load 1-3, while
 * the minimum moved by a fifth). The medians are printed beside it.
 */
import { createReadStream } from 'node:fs';
import { Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { AgeEncryptStream, newHeader, Sha256Meter } from '../worker/crypto/age.js';
import { EncryptStream } from '../worker/crypto/encrypt.js';
import { MasterKey } from '../worker/crypto/keys.js';

const MiB = 1024 * 1024;

interface StageSample {
  ms: number;
  cpuMs: number;
  rssGrowth: number;
}

// `age` is the stage as backup.ts runs it: the STREAM cipher and the SHA-256 of the stored bytes
// (recorded so that verify can check an object without the identity); `age-cipher` is the first alone.
const STAGES = ['read', 'aes-gcm', 'age-cipher', 'age'] as const;
type Stage = (typeof STAGES)[number];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

async function makeStage(stage: Stage, recipient: string): Promise<Transform[]> {
  if (stage === 'aes-gcm') return [new EncryptStream(new MasterKey(randomBytes(32)))];
  if (stage === 'age' || stage === 'age-cipher') {
    const { header, fileKey } = await newHeader([recipient]);
    const cipher = new AgeEncryptStream(header, fileKey);
    return stage === 'age' ? [cipher, new Sha256Meter()] : [cipher];
  }
  return [];
}

async function once(file: string, stage: Stage, recipient: string): Promise<StageSample> {
  const transforms = await makeStage(stage, recipient);
  const sink = new Writable({
    write(_chunk, _enc, done) {
      done();
    },
  });
  const start = process.memoryUsage.rss();
  let peak = start;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
  const t = performance.now();
  const cpu = process.cpuUsage();
  await pipeline([createReadStream(file), ...transforms, sink]);
  const used = process.cpuUsage(cpu);
  const ms = performance.now() - t;
  clearInterval(sampler);
  return {
    ms,
    cpuMs: (used.user + used.system) / 1000,
    rssGrowth: Math.max(peak, process.memoryUsage.rss()) - start,
  };
}

/**
 * `file`: the snapshot as etcdctl saved it (read once first, so every stage reads from the page
 * cache); `floorMs`: the floor's median time in this run.
 */
export async function benchEncryptionStages(file: string, floorMs: number, rounds: number): Promise<void> {
  const recipient = /# public key: (age1\S+)/.exec(execFileSync('age-keygen', [], { encoding: 'utf8' }))?.[1];
  if (!recipient) throw new Error('age-keygen printed no public key');
  await once(file, 'read', recipient);
  const samples = new Map<Stage, StageSample[]>(STAGES.map((s) => [s, []]));
  for (let round = 1; round <= Math.max(rounds, 9); round++) {
    for (const stage of STAGES) samples.get(stage)?.push(await once(file, stage, recipient));
  }
  const reads = samples.get('read') ?? [];
  const least = (ss: StageSample[]): number => Math.min(...ss.map((s) => s.cpuMs));
  const read = {
    ms: median(reads.map((s) => s.ms)),
    cpuMs: median(reads.map((s) => s.cpuMs)),
    leastCpuMs: least(reads),
  };
  const readRss = Math.max(...reads.map((s) => s.rssGrowth));
  console.log(
    `\n== encryption stages alone (same snapshot from the page cache, ${reads.length} rounds; floor ${floorMs.toFixed(0)} ms)`,
  );
  console.log(
    `read only  wall ${read.ms.toFixed(0).padStart(5)} ms  cpu ${read.cpuMs.toFixed(0).padStart(5)} ms (least ${read.leastCpuMs.toFixed(0)})  RSS growth ${(readRss / MiB).toFixed(1)} MiB`,
  );
  for (const stage of ['aes-gcm', 'age-cipher', 'age'] as const) {
    const ss = samples.get(stage) ?? [];
    const ms = median(ss.map((s) => s.ms));
    const cpuMs = median(ss.map((s) => s.cpuMs));
    const addedMs = least(ss) - read.leastCpuMs;
    const added = addedMs / floorMs;
    const rss = Math.max(...ss.map((s) => s.rssGrowth)) - readRss;
    console.log(
      `${stage.padEnd(10)} wall ${ms.toFixed(0).padStart(5)} ms  cpu ${cpuMs.toFixed(0).padStart(5)} ms (least ${least(ss).toFixed(0)}): adds ${addedMs.toFixed(0)} ms of CPU = ${added.toFixed(3)}x of the floor (medians: ${((cpuMs - read.cpuMs) / floorMs).toFixed(3)}x; target <= 0.1x: ${added <= 0.1 ? 'MET' : 'NOT MET'}), RSS growth ${rss >= 0 ? '+' : ''}${(rss / MiB).toFixed(1)} MiB over read-only (target < 10 MiB: ${rss < 10 * MiB ? 'MET' : 'NOT MET'})`,
    );
  }
}
