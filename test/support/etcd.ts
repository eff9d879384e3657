/**
 * A real etcd (Debian's etcd-server) on free loopback ports, for tests and benchmarks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { freePort, waitFor } from './ports.js';
import { tempDir } from './tmp.js';

export interface EtcdTls {
  ca: string;
  cert: string;
  key: string;
  /** Require client certificates signed by `ca`. */
  clientCertAuth: boolean;
}

export interface EtcdOptions {
  tls?: EtcdTls;
  /** Start on an existing data dir (e.g. one made by `etcdctl snapshot restore`). */
  dataDir?: string;
  name?: string;
  /** Extra etcd flags. */
  args?: string[];
}

export interface EtcdServer {
  endpoint: string;
  dataDir: string;
  process: ChildProcess;
  /** A client for test setup; closed by stop(). */
  client: Etcd3;
  stop(): Promise<void>;
  /** SIGKILL, as a crash. */
  kill(): void;
}

export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdServer> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const tmp = options.dataDir ? undefined : await tempDir('etcd');
  const dataDir = options.dataDir ?? join((tmp as { path: string }).path, 'data');
  const name = options.name ?? 'default';
  const scheme = options.tls ? 'https' : 'http';
  const endpoint = `${scheme}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', name,
    '--data-dir', dataDir,
    '--listen-client-urls', endpoint,
    '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `${name}=${peer}`,
    '--logger', 'zap',
    '--log-outputs', 'stderr',
    '--log-level', 'error',
    ...(options.tls
      ? ['--cert-file', options.tls.cert, '--key-file', options.tls.key, '--trusted-ca-file', options.tls.ca,
         ...(options.tls.clientCertAuth ? ['--client-cert-auth'] : [])]
      : []),
    ...(options.args ?? []),
  ];
  const child = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: '' } });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const client = new Etcd3({
    hosts: [endpoint],
    ...(options.tls ? { credentials: await tlsCredentials(options.tls) } : {}),
  });
  try {
    await waitFor('etcd to start', async () => {
      if (child.exitCode !== null) throw new Error(`etcd exited: ${stderr}`);
      await client.maintenance.status();
      return true;
    });
  } catch (err) {
    child.kill('SIGKILL');
    client.close();
    await tmp?.remove();
    throw err;
  }

  return {
    endpoint,
    dataDir,
    process: child,
    client,
    kill: () => child.kill('SIGKILL'),
    async stop() {
      client.close();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await tmp?.remove();
    },
  };
}

async function tlsCredentials(tls: EtcdTls) {
  const { readFile } = await import('node:fs/promises');
  return { rootCertificate: await readFile(tls.ca) };
}

/** Writes `count` keys of `valueSize` bytes under `prefix`, in batches, and returns the last revision. */
export async function fillEtcd(client: Etcd3, count: number, valueSize = 100, prefix = '/registry/test/'): Promise<number> {
  const value = 'x'.repeat(valueSize);
  let revision = 0;
  const batch = 64;
  for (let i = 0; i < count; i += batch) {
    const ops = [];
    for (let j = i; j < Math.min(count, i + batch); j++) ops.push(client.put(`${prefix}${String(j).padStart(8, '0')}`).value(value));
    const results = await Promise.all(ops.map((op) => op.exec()));
    for (const r of results) revision = Math.max(revision, Number(r.header.revision));
  }
  return revision;
}
