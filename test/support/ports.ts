import { mkdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Ports handed out stay reserved for a while: the caller binds them later (an etcd or Redis started with
 * the number), and test files run in parallel processes. Without the reservation two files asking at the same
 * moment could each be told the same just-closed port; the kernel does not know a port is promised. A
 * reservation is a directory (mkdir is atomic across processes); reservations older than RESERVED_MS are
 * taken over, since by then the port is bound or was never used.
 */
const RESERVATIONS = join(tmpdir(), 'etcd-autobackup-test-ports');
const RESERVED_MS = 10 * 60_000;
const mine = new Set<string>();
process.on('exit', () => {
  for (const path of mine) rmSync(path, { recursive: true, force: true });
});

function reserve(port: number): boolean {
  const path = join(RESERVATIONS, String(port));
  try {
    mkdirSync(path);
    mine.add(path);
    return true;
  } catch {
    try {
      if (Date.now() - statSync(path).mtimeMs < RESERVED_MS) return false;
      rmSync(path, { recursive: true, force: true });
      mkdirSync(path);
      mine.add(path);
      return true;
    } catch {
      return false;
    }
  }
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** A TCP port free on loopback right now and promised to no other caller of this function, in any process. */
export async function freePort(): Promise<number> {
  mkdirSync(RESERVATIONS, { recursive: true });
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await kernelPort();
    if (reserve(port)) return port;
  }
  throw new Error(`no free loopback port could be reserved under ${RESERVATIONS}`);
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}
