/** Starting and stopping an HTTP server on a `host:port` from config. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RequestListener } from 'node:http';

export interface Listening {
  server: Server;
  /** The address actually bound (the port is real even when 0 was asked for). */
  url: string;
  close(): Promise<void>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const at = listen.lastIndexOf(':');
  const host = listen.slice(0, at).replace(/^\[|\]$/g, '') || '0.0.0.0';
  return { host, port: Number(listen.slice(at + 1)) };
}

export async function listen(handler: RequestListener, address: string): Promise<Listening> {
  const { host, port } = parseListen(address);
  const server = createServer(handler);
  // The apiserver reuses connections to webhooks; keep them open longer than its idle timeout.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(`cannot listen on ${address} (webhook.listen / --listen): ${err.code === 'EADDRINUSE' ? 'the address is in use' : err.message}`)),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const shownHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    server,
    url: `http://${shownHost}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
