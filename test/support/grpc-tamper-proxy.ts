/**
 * An HTTP/2 (h2c) proxy in front of a real etcd that forwards every gRPC call unchanged, except
 * that it can flip the last byte of the final message of a Maintenance/Snapshot response: the
 * last byte of etcd's SHA-256 trailer. It lets a test see what the client does when the wire
 * delivers a corrupted trailer, with everything else real.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

const SNAPSHOT_PATH = '/etcdserverpb.Maintenance/Snapshot';

export interface TamperProxy {
  endpoint: string;
  /** When true, the snapshot trailer is corrupted. */
  corruptTrailer: boolean;
  close(): Promise<void>;
}

export async function startTamperProxy(upstreamEndpoint: string): Promise<TamperProxy> {
  const upstream = http2.connect(upstreamEndpoint);
  upstream.on('error', () => undefined);
  const server = http2.createServer();
  const state: TamperProxy = { endpoint: '', corruptTrailer: true, close: () => Promise.resolve() };

  server.on('stream', (down, headers) => {
    const forwarded: http2.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(headers)) if (k !== ':scheme' && k !== ':authority') forwarded[k] = v;
    const up = upstream.request(forwarded);
    let trailers: http2.IncomingHttpHeaders = {};
    down.pipe(up);
    down.on('error', () => up.close());
    up.on('error', () => down.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    up.on('response', (h) => down.respond(h, { waitForTrailers: true }));
    up.on('trailers', (t: http2.IncomingHttpHeaders) => {
      trailers = t;
    });
    down.on('wantTrailers', () => {
      const clean: http2.OutgoingHttpHeaders = {};
      for (const [k, v] of Object.entries(trailers)) if (!k.startsWith(':')) clean[k] = v;
      down.sendTrailers(clean);
    });

    if (headers[':path'] !== SNAPSHOT_PATH || !state.corruptTrailer) {
      up.pipe(down);
      return;
    }
    // Re-frame the gRPC messages (1 flag byte + 4 length bytes + payload), holding back the
    // latest whole message until the next arrives, so the last one can be altered at the end.
    let buffered = Buffer.alloc(0);
    let held: Buffer | undefined;
    up.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 5) {
        const size = 5 + buffered.readUInt32BE(1);
        if (buffered.length < size) break;
        if (held) down.write(held);
        held = Buffer.from(buffered.subarray(0, size));
        buffered = buffered.subarray(size);
      }
    });
    up.on('end', () => {
      if (held) {
        // The blob field is the last field of SnapshotResponse, so the message's last byte is
        // the last byte of the trailer.
        held[held.length - 1] = (held[held.length - 1] as number) ^ 0xff;
        down.write(held);
      }
      down.end();
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      upstream.close();
      server.close(() => resolve());
      for (const s of sessions) s.destroy();
    });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  return state;
}
