/**
 * Iterating on memory (issue 11) without refilling etcd each time: fills one etcd data dir once
 * (MEM_DATA_DIR, kept between runs), then runs the compiled runner (BENCH_RUNNER_JS) for each of
 * MEM_VARIANTS (file-none, file-zstd, oci-none, oci-zstd, ...) MEM_ROUNDS times and prints its
 * memory. BENCH_NODE_ARGS and BENCH_FLAGS pass as in bench/snapshot.ts; BENCH_MEM_TRACE in the
 * runner's env makes it write its memoryUsage timeline to stderr, shown here with MEM_SHOW_STDERR=1.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startEtcd } from '../test/support/etcd.js';
import { tempDir } from '../test/support/tmp.js';
import { fillEtcd } from './fill.js';
import { startLocalOci } from './oci.js';
import type { RunResult } from './run-ours.js';
import { envInt, runChild, mib, MiB } from './common.js';

async function main(): Promise<void> {
  const sizeMiB = envInt('BENCH_SIZE_MIB', 256);
  const dataDir = process.env.MEM_DATA_DIR ?? `/tmp/mem-etcd-${sizeMiB}`;
  const filled = existsSync(join(dataDir, 'member'));
  await mkdir(dataDir, { recursive: true });
  const quota = Math.max(2048, sizeMiB * 4) * MiB;
  const etcd = await startEtcd({ dataDir, args: ['--quota-backend-bytes', String(quota)] });
  const out = await tempDir('mem-out');
  const oci = await startLocalOci(out.path);
  try {
    if (!filled) {
      const r = await fillEtcd(etcd.client, sizeMiB * MiB, {});
      console.log(`filled ${r.keys} objects, ${mib(r.bytes)}`);
    }
    console.log(`etcd db ${mib(Number((await etcd.client.maintenance.status()).dbSize))}`);
    const runner = process.env.BENCH_RUNNER_JS;
    if (!runner) throw new Error('BENCH_RUNNER_JS is not set');
    const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
    const extra = JSON.parse(process.env.BENCH_FLAGS ?? '{}') as Record<string, string | boolean>;
    const variants = (process.env.MEM_VARIANTS ?? 'oci-none').split(',');
    const rounds = envInt('MEM_ROUNDS', 1);
    for (let round = 1; round <= rounds; round++) {
      for (const v of variants) {
        const [store, compression = 'none'] = v.split('-');
        const flags = store === 'oci' ? { ...oci.flags } : { store: `file://${join(out.path, 'ours')}` };
        const r = await runChild(process.execPath, [
          ...nodeArgs,
          runner,
          JSON.stringify({ endpoints: etcd.endpoint, cluster: 'bench', compression, ...flags, ...extra }),
        ]);
        if (r.code !== 0) {
          console.log(`${v} FAILED ${r.stderr.slice(-2000)}`);
          continue;
        }
        if (process.env.MEM_SHOW_STDERR === '1') process.stdout.write(r.stderr);
        // --trace-gc writes to stdout too: show its full collections, and take the runner's JSON line.
        const lines = r.stdout.trim().split('\n');
        for (const l of lines) if (/Mark-Compact/.test(l)) console.log(l);
        const o = JSON.parse(lines.filter((l) => l.startsWith('{')).pop() ?? '') as RunResult;
        console.log(
          `${v.padEnd(10)} ${(o.ms / 1000).toFixed(1)} s cpu ${(o.cpuMs / 1000).toFixed(1)} s  peak RSS ${mib(o.maxRss)} (start ${mib(o.startRss)}; heap ${mib(o.peaks.heapTotal)}, external ${mib(o.peaks.external)}, buffers ${mib(o.peaks.arrayBuffers)}; ${o.majorGcs.count} full GCs, ${o.majorGcs.ms.toFixed(0)} ms)`,
        );
      }
    }
  } finally {
    await oci.stop();
    await etcd.stop();
    await out.remove();
  }
}

await main();
