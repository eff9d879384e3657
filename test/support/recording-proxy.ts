/**
 * A transparent HTTP proxy between an S3 client and s3rver that records every request and can
 * answer chosen ones with an error, so tests can see which S3 calls were made (ListObjects V1 or
 * V2, AbortMultipartUpload) and make the storage fail in the middle of an upload.
 * When the backend is gone the client's connection is cut, as it would be by a dead server.
 */
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface RecordedRequest {
  method: string;
  /** Path and query as the client sent them. */
  url: string;
  /** Status of the answer, once it was sent; undefined while in flight or when the connection was cut. */
  status?: number;
}

export interface RecordingProxy {
  endpoint: string;
  requests: RecordedRequest[];
  /** Requests for which this returns true get a 500 InternalError instead of being forwarded. */
  failWhen: (req: IncomingMessage) => boolean;
  stop(): Promise<void>;
}

/** S3 call classifiers over recorded requests or incoming ones. */
type Call = { method?: string | undefined; url?: string | undefined };
const queryOf = (r: Call): URLSearchParams => new URL(r.url ?? '/', 'http://x').searchParams;
export const s3Call = {
  query: queryOf,
  isUploadPart: (r: Call): boolean => r.method === 'PUT' && queryOf(r).has('uploadId') && queryOf(r).has('partNumber'),
  isCreateMultipart: (r: Call): boolean => r.method === 'POST' && queryOf(r).has('uploads'),
  isAbortMultipart: (r: Call): boolean => r.method === 'DELETE' && queryOf(r).has('uploadId'),
};

export async function startRecordingProxy(backendPort: number): Promise<RecordingProxy> {
  const sockets = new Set<Socket>();
  const proxy: RecordingProxy = {
    endpoint: '',
    requests: [],
    failWhen: () => false,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = createServer((req, res) => {
    const record: RecordedRequest = { method: req.method ?? '', url: req.url ?? '' };
    proxy.requests.push(record);
    res.on('finish', () => (record.status = res.statusCode));
    if (proxy.failWhen(req)) {
      // Read the body first, as a real server does before it answers, so the client sees the 500.
      req.resume();
      req.on('end', () => {
        res.writeHead(500, { 'content-type': 'application/xml' });
        res.end(
          '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>',
        );
      });
      return;
    }
    const upstream = request(
      { host: '127.0.0.1', port: backendPort, method: req.method, path: req.url, headers: req.headers },
      (back) => {
        res.writeHead(back.statusCode ?? 502, back.headers);
        back.pipe(res);
        back.on('error', () => req.socket.destroy());
      },
    );
    upstream.on('error', () => req.socket.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
