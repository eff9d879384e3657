/**
 * A small S3 endpoint (path-style) for what a multipart upload whose CompleteMultipartUpload answer
 * was lost goes through, because s3rver cannot show it: its multipart ETag is the whole object's
 * MD5 without `-N`, and a second Complete never gets NoSuchUpload. This one answers as S3 does
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html): a part's
 * ETag is the quoted MD5 of its bytes; Complete checks the part list against the parts uploaded
 * (order, ETags, 5 MiB minimum but for the last), stores the object with the multipart ETag (MD5
 * of the parts' binary MD5s, then `-N`) and forgets the upload, so a second Complete gets 404
 * NoSuchUpload with S3's XML error. Each request's bucket, key, upload id, part numbers and body
 * length are checked and recorded; signatures are not. User metadata (x-amz-meta-* headers) given at
 * CreateMultipartUpload is recorded, kept with the object Complete makes and answered on HeadObject
 * and GetObject, as S3 does.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, ServerResponse, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Answer } from './http-answer.js';

export type S3Operation =
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'HeadObject'
  | 'GetObject'
  | 'DeleteObject';

export interface S3Request {
  op: S3Operation;
  bucket: string;
  key: string;
  uploadId?: string;
  partNumber?: number;
  /** The x-amz-server-side-encryption-customer-algorithm header, when sent. */
  sseCustomerAlgorithm?: string;
  /** The user metadata a CreateMultipartUpload sent (x-amz-meta-* headers, names without the prefix). */
  metadata?: Record<string, string>;
  /** The part list a CompleteMultipartUpload sent. */
  parts?: { num: number; etag: string }[];
  /** Set once answered. */
  status?: number;
}

/**
 * What a fault answers instead of the real handler; `lost` lets the request take effect and then
 * answers that error, as a reply lost on the way back (a proxy's 5xx after S3 had done it).
 */
export type S3Fault = { status: number; code: string } | { lost: { status: number; code: string } };

export interface MultipartServerOptions {
  buckets: string[];
  /**
   * `aws:kms` answers parts as S3 does under SSE-KMS: with that header and an ETag that is not
   * the MD5 of the part's bytes.
   * @defaultValue undefined (no encryption header; ETags are MD5s)
   */
  sse?: 'aws:kms';
}

interface StoredObject {
  data: Buffer;
  etag: string;
  metadata: Record<string, string>;
  /** Stored SSE-C: S3 then answers HeadObject and GetObject without the customer key headers with 400. */
  sseC?: boolean;
}

interface Upload {
  bucket: string;
  key: string;
  metadata: Record<string, string>;
  parts: Map<number, { data: Buffer; etag: string }>;
}

export interface MultipartServer {
  endpoint: string;
  /** Every request that named an operation, in arrival order. */
  requests: S3Request[];
  /** Answers a request with the fault instead of handling it when the rule returns one. */
  fault(rule: ((r: S3Request) => S3Fault | undefined) | undefined): void;
  /** Stores an object as a single PutObject by another writer would (ETag = quoted MD5), with its user metadata. */
  putObject(bucket: string, key: string, data: Buffer, metadata?: Record<string, string>, sseC?: boolean): void;
  object(bucket: string, key: string): StoredObject | undefined;
  /** Keys in a bucket, sorted. */
  keys(bucket: string): string[];
  /** Upload ids not yet completed or aborted. */
  openUploads(): string[];
  /** Forgets every upload, as an abort by someone else (or a lifecycle rule) would. */
  dropUploads(): void;
  stop(): Promise<void>;
}

const MIB = 1024 * 1024;
const md5 = (data: Buffer) => createHash('md5').update(data).digest();
const quoted = (hex: string) => `"${hex}"`;
const unescape = (s: string) =>
  s
    .replace(/&quot;/g, '"')
    .replace(/&#34;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');

export async function startMultipartServer(options: MultipartServerOptions): Promise<MultipartServer> {
  const buckets = new Map(options.buckets.map((b) => [b, new Map<string, StoredObject>()]));
  const uploads = new Map<string, Upload>();
  const requests: S3Request[] = [];
  let faultRule: ((r: S3Request) => S3Fault | undefined) | undefined;
  const sseHeaders: Record<string, string> = options.sse ? { 'x-amz-server-side-encryption': options.sse } : {};

  const bucketOf = (name: string) => {
    const b = buckets.get(name);
    if (!b) throw new Answer(404, 'NoSuchBucket', 'The specified bucket does not exist');
    return b;
  };
  const uploadOf = (r: S3Request) => {
    const u = r.uploadId === undefined ? undefined : uploads.get(r.uploadId);
    // S3 answers the same for an upload id that never was, was aborted, or was completed.
    if (!u || u.bucket !== r.bucket || u.key !== r.key)
      throw new Answer(
        404,
        'NoSuchUpload',
        'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
      );
    return u;
  };

  const classify = (req: IncomingMessage, url: URL, bucket: string, key: string): S3Request | undefined => {
    const q = url.searchParams;
    const uploadId = q.get('uploadId') ?? undefined;
    const ssec = req.headers['x-amz-server-side-encryption-customer-algorithm'];
    const base = {
      bucket,
      key,
      ...(uploadId !== undefined ? { uploadId } : {}),
      ...(typeof ssec === 'string' ? { sseCustomerAlgorithm: ssec } : {}),
    };
    if (key === '') return undefined;
    if (req.method === 'POST' && q.has('uploads'))
      return { op: 'CreateMultipartUpload', ...base, metadata: userMetadata(req) };
    if (req.method === 'PUT' && uploadId !== undefined) {
      const partNumber = Number(q.get('partNumber'));
      return { op: 'UploadPart', ...base, partNumber };
    }
    if (req.method === 'POST' && uploadId !== undefined) return { op: 'CompleteMultipartUpload', ...base };
    if (req.method === 'DELETE' && uploadId !== undefined) return { op: 'AbortMultipartUpload', ...base };
    if (req.method === 'DELETE') return { op: 'DeleteObject', ...base };
    if (req.method === 'HEAD') return { op: 'HeadObject', ...base };
    if (req.method === 'GET' && [...q.keys()].every((k) => k === 'x-id')) return { op: 'GetObject', ...base };
    return undefined;
  };

  const perform = (r: S3Request, body: Buffer, res: ServerResponse): void => {
    const objects = bucketOf(r.bucket);
    switch (r.op) {
      case 'CreateMultipartUpload': {
        const uploadId = randomUUID();
        uploads.set(uploadId, { bucket: r.bucket, key: r.key, metadata: r.metadata ?? {}, parts: new Map() });
        return xml(
          res,
          200,
          `<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${r.bucket}</Bucket><Key>${esc(r.key)}</Key><UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`,
          sseHeaders,
        );
      }
      case 'UploadPart': {
        const u = uploadOf(r);
        const num = r.partNumber ?? NaN;
        if (!Number.isInteger(num) || num < 1 || num > 10_000)
          throw new Answer(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive');
        // Under SSE-KMS S3's part ETag is not the MD5 of the bytes; this stands in for it.
        const etag = quoted(
          (options.sse ? md5(Buffer.concat([body, Buffer.from(r.uploadId ?? '')])) : md5(body)).toString('hex'),
        );
        u.parts.set(num, { data: body, etag });
        res.writeHead(200, { ETag: etag, ...sseHeaders });
        return void res.end();
      }
      case 'CompleteMultipartUpload': {
        const u = uploadOf(r);
        const listed = r.parts ?? [];
        if (listed.length === 0)
          throw new Answer(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate');
        const chosen = listed.map((p, i) => {
          if (i > 0 && p.num <= listed[i - 1]!.num)
            throw new Answer(400, 'InvalidPartOrder', 'The list of parts was not in ascending order.');
          const part = u.parts.get(p.num);
          if (!part || part.etag !== quoted(p.etag.replace(/^"|"$/g, '')))
            throw new Answer(
              400,
              'InvalidPart',
              "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.",
            );
          if (i < listed.length - 1 && part.data.length < 5 * MIB)
            throw new Answer(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size');
          return part;
        });
        const binary = chosen.map((p) => Buffer.from(p.etag.slice(1, -1), 'hex'));
        const etag = quoted(`${md5(Buffer.concat(binary)).toString('hex')}-${chosen.length}`);
        objects.set(r.key, { data: Buffer.concat(chosen.map((p) => p.data)), etag, metadata: u.metadata });
        uploads.delete(r.uploadId ?? '');
        return xml(
          res,
          200,
          `<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>/${r.bucket}/${esc(r.key)}</Location><Bucket>${r.bucket}</Bucket><Key>${esc(r.key)}</Key><ETag>${esc(etag)}</ETag></CompleteMultipartUploadResult>`,
          sseHeaders,
        );
      }
      case 'AbortMultipartUpload':
        uploadOf(r);
        uploads.delete(r.uploadId ?? '');
        res.writeHead(204);
        return void res.end();
      case 'DeleteObject':
        objects.delete(r.key);
        res.writeHead(204);
        return void res.end();
      case 'HeadObject':
      case 'GetObject': {
        const o = objects.get(r.key);
        if (!o) throw new Answer(404, 'NoSuchKey', 'The specified key does not exist.');
        if (o.sseC && r.sseCustomerAlgorithm === undefined)
          throw new Answer(
            400,
            'InvalidRequest',
            'The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.',
          );
        res.writeHead(200, {
          ETag: o.etag,
          'Content-Length': String(o.data.length),
          'Content-Type': 'application/octet-stream',
          'Last-Modified': new Date().toUTCString(),
          ...Object.fromEntries(Object.entries(o.metadata).map(([k, v]) => [`x-amz-meta-${k}`, v])),
          ...sseHeaders,
        });
        return void res.end(r.op === 'GetObject' ? o.data : undefined);
      }
    }
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', 'http://x');
      const slash = url.pathname.indexOf('/', 1);
      const bucket = decodeURIComponent(url.pathname.slice(1, slash < 0 ? undefined : slash));
      const key = slash < 0 ? '' : decodeURIComponent(url.pathname.slice(slash + 1));
      const record = classify(req, url, bucket, key);
      if (!record) return error(res, req, new Answer(501, 'NotImplemented', 'not in this fake'));
      requests.push(record);
      res.on('finish', () => (record.status = res.statusCode));
      try {
        checkBody(req, body);
        if (record.op === 'CompleteMultipartUpload') record.parts = partList(body);
        const fault = faultRule?.(record);
        if (fault && 'lost' in fault) {
          // The request takes effect; its answer is replaced by the error, as if lost on the way back.
          perform(record, body, new ServerResponse(req));
          throw new Answer(
            fault.lost.status,
            fault.lost.code,
            `injected ${fault.lost.code} after the request took effect`,
          );
        }
        if (fault) throw new Answer(fault.status, fault.code, `injected ${fault.code}`);
        perform(record, body, res);
      } catch (err) {
        if (!(err instanceof Answer)) throw err;
        error(res, req, err, record.uploadId);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    fault: (rule) => void (faultRule = rule),
    putObject: (bucket, key, data, metadata = {}, sseC = false) =>
      void bucketOf(bucket).set(key, { data, etag: quoted(md5(data).toString('hex')), metadata, sseC }),
    object: (bucket, key) => buckets.get(bucket)?.get(key),
    keys: (bucket) => [...(buckets.get(bucket)?.keys() ?? [])].sort(),
    openUploads: () => [...uploads.keys()],
    dropUploads: () => uploads.clear(),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The x-amz-meta-* headers, names lower-cased (as Node gives them) without the prefix. */
function userMetadata(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers))
    if (name.startsWith('x-amz-meta-') && typeof value === 'string') out[name.slice('x-amz-meta-'.length)] = value;
  return out;
}

/** The body is what Content-Length and x-amz-content-sha256 (when a hash) said it would be. */
function checkBody(req: IncomingMessage, body: Buffer): void {
  if (req.headers['content-encoding']?.includes('aws-chunked'))
    throw new Answer(501, 'NotImplemented', 'aws-chunked bodies are not in this fake');
  const length = req.headers['content-length'];
  if (length !== undefined && Number(length) !== body.length)
    throw new Answer(400, 'IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length');
  const sha = req.headers['x-amz-content-sha256'];
  if (typeof sha === 'string' && /^[0-9a-f]{64}$/.test(sha) && createHash('sha256').update(body).digest('hex') !== sha)
    throw new Answer(400, 'XAmzContentSHA256Mismatch', 'The provided x-amz-content-sha256 header does not match');
}

/** The `<Part>` list of a CompleteMultipartUpload body, in the order sent. */
function partList(body: Buffer): { num: number; etag: string }[] {
  const text = body.toString('utf8');
  if (!/^(<\?xml[^>]*\?>)?\s*<CompleteMultipartUpload[\s>]/.test(text))
    throw new Answer(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate');
  return [...text.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map((m) => {
    const inner = m[1] ?? '';
    const num = Number(/<PartNumber>(\d+)<\/PartNumber>/.exec(inner)?.[1]);
    const etag = unescape(/<ETag>([\s\S]*?)<\/ETag>/.exec(inner)?.[1] ?? '');
    if (!Number.isInteger(num) || etag === '')
      throw new Answer(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate');
    return { num, etag };
  });
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function xml(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/xml', ...headers });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);
}

function error(res: ServerResponse, req: IncomingMessage, err: Answer, uploadId?: string): void {
  const requestId = randomUUID().replace(/-/g, '').slice(0, 16).toUpperCase();
  // S3 answers HEAD errors with the status alone: a HEAD response has no body.
  if (req.method === 'HEAD') {
    res.writeHead(err.status, { 'x-amz-request-id': requestId });
    return void res.end();
  }
  xml(
    res,
    err.status,
    `<Error><Code>${err.code}</Code><Message>${esc(err.message)}</Message>${uploadId && err.code === 'NoSuchUpload' ? `<UploadId>${uploadId}</UploadId>` : ''}<RequestId>${requestId}</RequestId><HostId>fake</HostId></Error>`,
    { 'x-amz-request-id': requestId },
  );
}
