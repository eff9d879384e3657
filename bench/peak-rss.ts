/** Peak RSS of a process: another one (benchmarks that boot an etcd) or this one. */
import { readFile } from 'node:fs/promises';

/** VmHWM of a live process, bytes; 0 once it is gone. */
export async function peakRssOf(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kib = /^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kib ? Number(kib) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * This process's own peak RSS, bytes. Not `process.resourceUsage().maxRSS`: Linux carries a
 * process's maxrss across execve, so a child spawned by a larger parent (the bench, ~100 MiB under
 * tsx) reports at least the parent's RSS. VmHWM is the high-water mark of this process's own
 * memory map; maxRSS stands in where /proc is missing.
 */
export async function ownPeakRss(): Promise<number> {
  return (await peakRssOf(process.pid)) || process.resourceUsage().maxRSS * 1024;
}
