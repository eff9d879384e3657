/**
 * A real redis-server on a free loopback port, for tests: in memory only, or with an append-only
 * file (`persistDir`, fsync on every write, as the chart's Redis with a PVC). It can be killed and
 * started again on the same port to play an outage.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './ports.js';

export interface RedisServer {
  url: string;
  port: number;
  /** SIGKILL, as a crash; the data is gone unless started with persistDir. */
  kill(): Promise<void>;
  /** Starts the server again on the same port after kill(). */
  restart(): Promise<void>;
  /** Sum of calls of every command since the server started, minus the INFO calls used to read it. */
  commandCalls(): Promise<number>;
  /** Runs a command on a short-lived connection. */
  command(name: string, ...args: (string | number)[]): Promise<unknown>;
  stop(): Promise<void>;
}

export interface RedisOptions {
  /** Keep the data in an append-only file in this directory (fsync always): a restart after kill() finds it. */
  persistDir?: string;
}

export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const port = await freePort();
  const persistence = options.persistDir
    ? ['--dir', options.persistDir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always']
    : ['--save', '', '--appendonly', 'no'];
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  async function launch(): Promise<void> {
    const proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', ...persistence, '--loglevel', 'warning'],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    child = proc;
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    await waitFor('redis-server to start', async () => {
      if (proc.exitCode !== null) throw new Error(`redis-server exited: ${stderr}`);
      return (await command('PING')) === 'PONG';
    });
  }

  async function command(name: string, ...args: (string | number)[]): Promise<unknown> {
    const client = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return await client.call(name, ...args);
    } finally {
      client.disconnect();
    }
  }

  async function kill(): Promise<void> {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }

  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    restart: launch,
    command,
    async commandCalls() {
      const info = String(await command('INFO', 'commandstats'));
      let total = 0;
      let infoCalls = 0;
      for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
        total += Number(m[2]);
        if (m[1] === 'info') infoCalls = Number(m[2]);
      }
      return total - infoCalls;
    },
    async stop() {
      if (child && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}
