/**
 * A TCP proxy in front of etcd that can hold one snapshot mid-stream: once armed, the first
 * connection whose etcd-to-client bytes pass `afterBytes` gets those bytes and then nothing more
 * until `release()` (TCP backpressure stalls etcd's send, as a congested link would). Only a
 * snapshot moves that many bytes on one connection; status calls and watches pass untouched.
 * It lets a test act while a snapshot is certainly under way (kill the worker, send a trigger,
 * SIGTERM the service) without relying on how long a snapshot takes.
 */
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';

export interface HoldProxy {
  /** `http://127.0.0.1:<port>`: give it to the processes as their etcd endpoint. */
  endpoint: string;
  /** Holds the next connection that passes `afterBytes`; resolves when it is being held. */
  holdNext(afterBytes: number): Promise<void>;
  /** Lets the held connection go on; later connections are not held. */
  release(): void;
  /** Connections that were cut while held (their client went away). */
  readonly cutWhileHeld: number;
  stop(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  bytes: number;
  held: boolean;
  blocked: boolean;
}

export async function startHoldProxy(upstreamPort: number): Promise<HoldProxy> {
  const pairs = new Set<Pair>();
  let armed: { afterBytes: number; holding: () => void } | undefined;
  let heldPair: Pair | undefined;
  let cut = 0;

  const resumeIfFree = (p: Pair): void => {
    if (!p.held && !p.blocked) p.upstream.resume();
  };

  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: upstreamPort });
    const pair: Pair = { client, upstream, bytes: 0, held: false, blocked: false };
    pairs.add(pair);
    const close = () => {
      if (pair.held) cut++;
      pair.held = false;
      if (heldPair === pair) heldPair = undefined;
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      pair.bytes += chunk.length;
      if (!client.write(chunk)) {
        pair.blocked = true;
        upstream.pause();
        client.once('drain', () => {
          pair.blocked = false;
          resumeIfFree(pair);
        });
      }
      if (armed && pair.bytes >= armed.afterBytes) {
        const { holding } = armed;
        armed = undefined;
        pair.held = true;
        heldPair = pair;
        upstream.pause();
        holding();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    holdNext(afterBytes) {
      return new Promise<void>((resolve) => {
        armed = { afterBytes, holding: resolve };
      });
    },
    release() {
      armed = undefined;
      const p = heldPair;
      heldPair = undefined;
      if (p) {
        p.held = false;
        resumeIfFree(p);
      }
    },
    get cutWhileHeld() {
      return cut;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const p of pairs) {
          p.client.destroy();
          p.upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
