/**
 * A minimal S3 endpoint for ListMultipartUploads and AbortMultipartUpload, which s3rver does not
 * implement (it answers `GET /bucket?uploads` with NotImplemented). It answers from a fixed list
 * of incomplete uploads, a page at a time, filtered by `prefix` as S3 does, and records every
 * request so tests can check what the store asked for. Signatures are not checked.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeUpload {
  key: string;
  uploadId: string;
  initiated: Date;
}

export interface UploadsServer {
  endpoint: string;
  requests: { method: string; url: string }[];
  /** Upload ids aborted so far. */
  aborted: string[];
  stop(): Promise<void>;
}

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export async function startUploadsServer(
  bucket: string,
  uploads: FakeUpload[],
  pageSize: number,
): Promise<UploadsServer> {
  const state: UploadsServer = { endpoint: '', requests: [], aborted: [], stop: () => Promise.resolve() };
  const server = createServer((req, res) => {
    state.requests.push({ method: req.method ?? '', url: req.url ?? '' });
    req.resume();
    const url = new URL(req.url ?? '/', 'http://x');
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== bucket) {
      res.writeHead(404, { 'content-type': 'application/xml' });
      res.end('<Error><Code>NoSuchBucket</Code><Message>no such bucket</Message></Error>');
      return;
    }
    if (req.method === 'GET' && url.searchParams.has('uploads')) {
      const prefix = url.searchParams.get('prefix') ?? '';
      const marker = url.searchParams.get('key-marker') ?? '';
      const matching = uploads
        .filter((u) => u.key.startsWith(prefix) && u.key > marker)
        .sort((a, b) => a.key.localeCompare(b.key));
      const page = matching.slice(0, pageSize);
      const truncated = matching.length > pageSize;
      const last = page.at(-1);
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
          `<Bucket>${bucket}</Bucket><KeyMarker>${xmlEscape(marker)}</KeyMarker><UploadIdMarker></UploadIdMarker>` +
          (truncated && last
            ? `<NextKeyMarker>${xmlEscape(last.key)}</NextKeyMarker><NextUploadIdMarker>${last.uploadId}</NextUploadIdMarker>`
            : '') +
          `<Prefix>${xmlEscape(prefix)}</Prefix><MaxUploads>${pageSize}</MaxUploads><IsTruncated>${truncated}</IsTruncated>` +
          page
            .map(
              (u) =>
                `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${u.uploadId}</UploadId><Initiated>${u.initiated.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`,
            )
            .join('') +
          '</ListMultipartUploadsResult>',
      );
      return;
    }
    const uploadId = url.searchParams.get('uploadId');
    if (req.method === 'DELETE' && uploadId) {
      state.aborted.push(uploadId);
      res.writeHead(204);
      res.end();
      return;
    }
    res.writeHead(501, { 'content-type': 'application/xml' });
    res.end('<Error><Code>NotImplemented</Code><Message>not in this fake</Message></Error>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.stop = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return state;
}
