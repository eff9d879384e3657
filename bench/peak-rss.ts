/** Peak RSS of another process, for benchmarks that boot an etcd. */
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
