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
  /** Client certificate and key the test's own client uses (needed with clientCertAuth). */
  clientCert?: string;
  clientKey?: string;
}

export interface EtcdOptions {
  tls?: EtcdTls;
  /** Start on an existing data dir (e.g. one made by `etcdctl snapshot restore`). */
  dataDir?: string;
  name?: string;
  /** Extra etcd flags. */
  args?: string[];
  /** Client port of a single member (default: a free one); to restart etcd where clients expect it. */
  clientPort?: number;
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

interface Member {
  name: string;
  endpoint: string;
  peer: string;
  dataDir: string;
}

function spawnMember(
  m: Member,
  initialCluster: string,
  options: EtcdOptions,
): { child: ChildProcess; stderr: () => string } {
  const args = [
    '--name',
    m.name,
    '--data-dir',
    m.dataDir,
    '--listen-client-urls',
    m.endpoint,
    '--advertise-client-urls',
    m.endpoint,
    '--listen-peer-urls',
    m.peer,
    '--initial-advertise-peer-urls',
    m.peer,
    '--initial-cluster',
    initialCluster,
    '--logger',
    'zap',
    '--log-outputs',
    'stderr',
    '--log-level',
    'error',
    ...(options.tls
      ? [
          '--cert-file',
          options.tls.cert,
          '--key-file',
          options.tls.key,
          '--trusted-ca-file',
          options.tls.ca,
          ...(options.tls.clientCertAuth ? ['--client-cert-auth'] : []),
        ]
      : []),
    ...(options.args ?? []),
  ];
  const child = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  return { child, stderr: () => stderr };
}

async function newMember(name: string, scheme: string, dataDir: string, clientPort?: number): Promise<Member> {
  return {
    name,
    dataDir,
    endpoint: `${scheme}://127.0.0.1:${clientPort ?? (await freePort())}`,
    peer: `http://127.0.0.1:${await freePort()}`,
  };
}

function handle(m: Member, child: ChildProcess, client: Etcd3, cleanup: () => Promise<void>): EtcdServer {
  const exited = new Promise<void>((resolve) =>
    child.exitCode !== null ? resolve() : child.once('exit', () => resolve()),
  );
  return {
    endpoint: m.endpoint,
    dataDir: m.dataDir,
    process: child,
    client,
    kill: () => child.kill('SIGKILL'),
    async stop() {
      client.close();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      await cleanup();
    },
  };
}

export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdServer> {
  const [server] = await startEtcdCluster(1, options);
  return server as EtcdServer;
}

/** `size` members forming one cluster; each handle's client talks to its own member. */
export async function startEtcdCluster(size: number, options: EtcdOptions = {}): Promise<EtcdServer[]> {
  const tmp = options.dataDir ? undefined : await tempDir('etcd');
  const scheme = options.tls ? 'https' : 'http';
  const members: Member[] = [];
  for (let i = 0; i < size; i++) {
    const name = size === 1 ? (options.name ?? 'default') : `m${i}`;
    const clientPort = size === 1 ? options.clientPort : undefined;
    members.push(
      await newMember(name, scheme, options.dataDir ?? join((tmp as { path: string }).path, name), clientPort),
    );
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peer}`).join(',');
  const started = members.map((m) => ({ m, ...spawnMember(m, initialCluster, options) }));
  const credentials = options.tls ? await tlsCredentials(options.tls) : undefined;
  const clients = members.map((m) => new Etcd3({ hosts: [m.endpoint], ...(credentials ? { credentials } : {}) }));
  try {
    await Promise.all(
      started.map(({ child, stderr }, i) =>
        waitFor('etcd to start', async () => {
          if (child.exitCode !== null) throw new Error(`etcd exited: ${stderr()}`);
          await (clients[i] as Etcd3).maintenance.status();
          return true;
        }),
      ),
    );
  } catch (err) {
    for (const s of started) s.child.kill('SIGKILL');
    for (const c of clients) c.close();
    await tmp?.remove();
    throw err;
  }
  let stopped = 0;
  // The temp dir holds every member's data: remove it once the last member has stopped.
  const cleanup = async () => {
    if (++stopped === size) await tmp?.remove();
  };
  return started.map(({ m, child }, i) => handle(m, child, clients[i] as Etcd3, cleanup));
}

async function tlsCredentials(tls: EtcdTls) {
  const { readFile } = await import('node:fs/promises');
  return {
    rootCertificate: await readFile(tls.ca),
    ...(tls.clientCert && tls.clientKey
      ? { certChain: await readFile(tls.clientCert), privateKey: await readFile(tls.clientKey) }
      : {}),
  };
}

/** Writes `count` keys of `valueSize` bytes under `prefix`, in batches, and returns the last revision. */
export async function fillEtcd(
  client: Etcd3,
  count: number,
  valueSize = 100,
  prefix = '/registry/test/',
): Promise<number> {
  const value = 'x'.repeat(valueSize);
  let revision = 0;
  const batch = 64;
  for (let i = 0; i < count; i += batch) {
    const ops = [];
    for (let j = i; j < Math.min(count, i + batch); j++)
      ops.push(client.put(`${prefix}${String(j).padStart(8, '0')}`).value(value));
    const results = await Promise.all(ops.map((op) => op.exec()));
    for (const r of results) revision = Math.max(revision, Number(r.header.revision));
  }
  return revision;
}
