/**
 * AWS S3 and S3-compatible services (MinIO, Ceph, R2, NCP). Uploads are streamed multipart uploads
 * over a fixed pool of part buffers (worker/stores/multipart.ts, shared with OCI), so memory stays at
 * partSize x queueSize whatever the snapshot's size, and the object appears only when
 * CompleteMultipartUpload succeeds: that is what makes put atomic.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  ListMultipartUploadsCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type BucketLocationConstraint,
  type HeadObjectCommandOutput,
  type _Object,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { S3Config } from '../../core/config/index.js';
import { ConfigError, messageOf } from '../../core/errors.js';
import { parseBucketUrl, redactUrl } from './bucket-url.js';
import { GarbageBound } from '../../core/garbage-bound.js';
import { multipartPut } from './multipart.js';
import { describeS3Error, errorName } from './s3-errors.js';
import { assertSafeKey, joinKey, NotFoundError, type ObjectInfo, type PutOptions, type Store } from './store.js';

export interface S3StoreOptions {
  bucket: string;
  /** Base prefix every key lives under, without leading or trailing slash; may be empty. */
  prefix: string;
  /** The store URL without credentials, for logs and messages. */
  location: string;
  s3: S3Config;
  /**
   * `v2` is ListObjectsV2 (AWS, MinIO, Ceph, R2); `v1` is ListObjects with Marker paging, for
   * services that never implemented V2.
   */
  listing?: 'v1' | 'v2';
  /** Keys per list call; 1000 is the S3 maximum. Small values let tests cross page boundaries. */
  pageSize?: number;
}

const MIB = 1024 * 1024;

/**
 * User metadata (x-amz-meta-etcd-autobackup-upload) that CreateMultipartUpload gives the object: a
 * random token per upload, so that after a lost Complete answer the object at the key can be told
 * ours even when its ETag is not an MD5 (SSE-KMS). The SDK lower-cases metadata names.
 */
export const UPLOAD_TOKEN_METADATA = 'etcd-autobackup-upload';

export class S3Store implements Store {
  readonly location: string;
  /** The service's address, or undefined for AWS's own endpoints; for logs. */
  readonly endpoint: string | undefined;
  private readonly client: S3Client;
  private readonly agent: HttpsAgent | undefined;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly where: string;
  /** Multipart uploads whose abort failed, by upload id: full key. */
  private readonly unaborted = new Map<string, string>();

  constructor(private readonly options: S3StoreOptions) {
    const { s3 } = options;
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    this.location = options.location;
    this.endpoint = s3.endpoint ? redactUrl(s3.endpoint) : undefined;
    this.where = `${options.location} (${this.endpoint ? `endpoint ${this.endpoint}` : 'AWS S3'})`;
    if ((s3.accessKeyId === undefined) !== (s3.secretAccessKey === undefined)) {
      throw new ConfigError(
        'store.s3.accessKeyId and store.s3.secretAccessKey go together: give both, or neither to use the AWS credential chain',
      );
    }
    this.agent = s3.caFile
      ? new HttpsAgent({ keepAlive: true, maxSockets: 50, ca: [...rootCertificates, readCa(s3.caFile)] })
      : undefined;
    this.client = createClient(s3, this.agent);
  }

  /**
   * Makes sure the bucket exists: HeadBucket, then CreateBucket in the client's region when it is
   * missing and `create` is on. Never creates when `create` is off: a missing bucket is then an
   * error that says which setting to change.
   */
  async ensureBucket(create: boolean): Promise<'exists' | 'created'> {
    const Bucket = this.bucket;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket }));
      return 'exists';
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 403)
        throw new Error(
          `bucket "${Bucket}" at ${this.where}: HeadBucket was denied (HTTP 403); the credentials need the s3:ListBucket permission on the bucket`,
          { cause: err },
        );
      if (status !== 404 && errorName(err) !== 'NotFound' && errorName(err) !== 'NoSuchBucket')
        throw new Error(`bucket "${Bucket}" at ${this.where}: ${describeS3Error(err)}`, { cause: err });
    }
    if (!create)
      throw new Error(
        `bucket "${Bucket}" at ${this.where} does not exist, and store.createBucket is off: create the bucket, or set store.createBucket: true`,
      );
    // us-east-1 is the one region S3 rejects as a LocationConstraint; it is the default there.
    const region = await this.client.config.region();
    const configuration =
      region && region !== 'us-east-1' ? { LocationConstraint: region as BucketLocationConstraint } : undefined;
    try {
      await this.client.send(
        new CreateBucketCommand({ Bucket, ...(configuration ? { CreateBucketConfiguration: configuration } : {}) }),
      );
    } catch (err) {
      const name = errorName(err);
      // Another worker (or a person) won the race: the bucket is there, which is all that is wanted.
      if (name === 'BucketAlreadyOwnedByYou') return 'exists';
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (name === 'AccessDenied' || status === 403)
        throw new Error(
          `bucket "${Bucket}" at ${this.where} does not exist and CreateBucket was denied: the credentials need the s3:CreateBucket permission (or create the bucket and set store.createBucket: false)`,
          { cause: err },
        );
      throw new Error(`bucket "${Bucket}" at ${this.where}: CreateBucket failed: ${describeS3Error(err)}`, {
        cause: err,
      });
    }
    return 'created';
  }

  private fullKey(key: string): string {
    assertSafeKey(key);
    return joinKey(this.prefix, key);
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<{ size: number }> {
    // In the background: a service still down must not delay (or fail) this upload.
    if (this.unaborted.size > 0) void this.retryAborts();
    let fullKey: string;
    try {
      fullKey = this.fullKey(key);
    } catch (err) {
      body.destroy(err as Error);
      throw err;
    }
    const Key = fullKey;
    const Bucket = this.bucket;
    const ContentType = options.contentType;
    const typed = ContentType ? { ContentType } : {};
    /** A part came back SSE-KMS or SSE-C encrypted: its ETag is then not the MD5 of its bytes. */
    let opaque = false;
    const token = randomBytes(16).toString('hex');
    // As in the OCI store: each part's request leaves promoted garbage that V8 alone let grow with
    // the snapshot (2 GiB to S3: 161 MiB peak RSS against 120 MiB at 256 MiB; core/garbage-bound.ts).
    const bound = new GarbageBound();
    return multipartPut(
      body,
      {
        single: async (data) => {
          await this.client.send(
            new PutObjectCommand({ Bucket, Key, Body: data, ContentLength: data.length, ...typed }),
          );
        },
        create: async () => {
          const out = await this.client.send(
            new CreateMultipartUploadCommand({ Bucket, Key, Metadata: { [UPLOAD_TOKEN_METADATA]: token }, ...typed }),
          );
          if (!out.UploadId) throw new Error('the service returned no UploadId');
          return out.UploadId;
        },
        part: async (UploadId, PartNumber, data) => {
          const out = await this.client.send(
            new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body: data, ContentLength: data.length }),
          );
          if (!out.ETag) throw new Error(`the service returned no ETag for part ${PartNumber}`);
          if (opaqueEncryption(out)) opaque = true;
          bound.observe(data.length);
          return out.ETag;
        },
        complete: async (UploadId, parts, size) => {
          try {
            await this.client.send(
              new CompleteMultipartUploadCommand({
                Bucket,
                Key,
                UploadId,
                MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.num, ETag: p.etag })) },
              }),
            );
          } catch (err) {
            // The SDK retries a Complete whose answer was lost (a timeout, a proxy's 5xx), and the
            // retry finds the upload gone because the first one completed it. Then the object is
            // ours when it carries this upload's token and size (and, when the ETags are MD5s, the
            // multipart ETag of the parts we sent); anything else fails.
            if (errorName(err) !== 'NoSuchUpload') throw err;
            const notOurs = await this.notCompletedFrom(Key, parts, { opaque, token, size });
            if (notOurs !== undefined)
              throw new Error(`CompleteMultipartUpload answered 404 NoSuchUpload and ${notOurs}`, { cause: err });
          }
        },
        abort: (uploadId) => this.abortUpload(Key, uploadId),
        remove: async () => {
          await this.client.send(new DeleteObjectCommand({ Bucket, Key }));
        },
        describe: describeS3Error,
      },
      {
        key,
        where: this.where,
        partSize: this.options.s3.partSizeMiB * MIB,
        parallel: this.options.s3.queueSize,
        signal: options.signal,
      },
    );
  }

  /**
   * Aborts the incomplete multipart uploads under this store's prefix started more than
   * `olderThanMs` ago: left when an upload failed and its abort could not reach the service
   * (the service was down), they are invisible but use space. Any upload that old is no longer
   * running (no snapshot outlives snapshot.timeout). Returns how many were aborted.
   */
  async abortStaleUploads(olderThanMs: number, nowMs: number = Date.now()): Promise<number> {
    const found: MultipartUpload[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.client
        .send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            ...(this.prefix ? { Prefix: `${this.prefix}/` } : {}),
            ...(keyMarker !== undefined ? { KeyMarker: keyMarker } : {}),
            ...(uploadIdMarker !== undefined ? { UploadIdMarker: uploadIdMarker } : {}),
          }),
        )
        .catch((err: unknown) => {
          throw new Error(`listing incomplete uploads in ${this.where} failed: ${describeS3Error(err)}`, {
            cause: err,
          });
        });
      for (const u of page.Uploads ?? [])
        if (u.Key && u.UploadId && u.Initiated)
          found.push({ key: u.Key, uploadId: u.UploadId, initiated: u.Initiated });
      if (!page.IsTruncated) break;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
      if (keyMarker === undefined && uploadIdMarker === undefined) break;
    }
    let aborted = 0;
    for (const u of staleUploads(found, nowMs, olderThanMs)) {
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.key, UploadId: u.uploadId }))
        .catch((err: unknown) => {
          if (errorName(err) === 'NoSuchUpload') return;
          throw new Error(
            `aborting the incomplete upload of "${u.key}" in ${this.where} failed: ${describeS3Error(err)}`,
            {
              cause: err,
            },
          );
        });
      aborted += 1;
    }
    return aborted;
  }

  /**
   * Why the object under `fullKey` is not the one this multipart upload made, or undefined when it
   * is (a Complete whose first answer was lost): it must carry the upload's token and size, and
   * when the part ETags are MD5s, their multipart ETag too. This store never sends SSE-C keys
   * (store.s3 has no setting for them, and a bucket's default encryption cannot be SSE-C), so
   * HeadObject needs none: an SSE-C object at the key is another writer's.
   */
  private async notCompletedFrom(
    fullKey: string,
    parts: readonly { num: number; etag: string }[],
    sent: { opaque: boolean; token: string; size: number },
  ): Promise<string | undefined> {
    let head: HeadObjectCommandOutput;
    try {
      head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: fullKey }));
    } catch (err) {
      // S3 answers HeadObject of an SSE-C object without its key with 400.
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 400)
        return `the object at the key cannot be read without SSE-C headers (HeadObject: ${describeS3Error(err)}), and this store never uploads SSE-C: it is another writer's object, not this upload`;
      return `no object of ours is at the key (HeadObject: ${describeS3Error(err)}): the upload was aborted (by another process or a lifecycle rule) rather than completed`;
    }
    const found = head.Metadata?.[UPLOAD_TOKEN_METADATA];
    if (found !== sent.token)
      return `the object at the key ${found === undefined ? 'carries no upload token' : 'carries another upload token'} (x-amz-meta-${UPLOAD_TOKEN_METADATA}): it is another writer's (or an older) object, not this upload`;
    if (head.ContentLength !== sent.size)
      return `the object at the key has this upload's token but its size differs: ${head.ContentLength ?? '(none)'} bytes, not the ${sent.size} sent`;
    const expected = sent.opaque || opaqueEncryption(head) ? undefined : multipartEtag(parts);
    // SSE-KMS (or a service answering other ETags): token and size are all there is to tell.
    if (expected === undefined || head.ETag === expected) return undefined;
    return `the object at the key has ETag ${head.ETag ?? '(none)'}, not ${expected} of the parts sent: it is another writer's (or an older) object, not this upload`;
  }

  /** Sends AbortMultipartUpload and says how it went, for the error message. */
  private async abortUpload(fullKey: string, uploadId: string): Promise<string> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId }),
      );
      return '; the multipart upload was aborted, nothing was stored';
    } catch (err) {
      if (errorName(err) === 'NoSuchUpload') return '; the multipart upload no longer exists, nothing of it is left';
      this.unaborted.set(uploadId, fullKey);
      return (
        `; aborting the multipart upload also failed (${describeS3Error(err)}): no object is visible; the abort is` +
        ' tried again at the next upload and at the next start (older than snapshot.timeout)'
      );
    }
  }

  /** Aborts again the uploads whose abort failed (the service was down); kept for the next try when it fails again. */
  private async retryAborts(): Promise<void> {
    for (const [uploadId, fullKey] of [...this.unaborted]) {
      try {
        await this.client.send(
          new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId }),
        );
        this.unaborted.delete(uploadId);
      } catch (err) {
        if (errorName(err) === 'NoSuchUpload') this.unaborted.delete(uploadId);
        else return;
      }
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const full = joinKey(this.prefix, prefix);
    const base = this.prefix ? `${this.prefix}/` : '';
    const pageSize = this.options.pageSize ?? 1000;
    const out: ObjectInfo[] = [];
    const collect = (contents: _Object[] | undefined) => {
      for (const o of contents ?? []) {
        // Consoles (NCP's among them) create zero-byte "folder" objects; they are not snapshots.
        if (!o.Key || o.Key.endsWith('/') || !o.Key.startsWith(base)) continue;
        out.push({
          key: o.Key.slice(base.length),
          size: o.Size ?? 0,
          ...(o.LastModified ? { modified: o.LastModified } : {}),
        });
      }
    };
    try {
      if (this.options.listing === 'v1') {
        let marker: string | undefined;
        for (;;) {
          const page = await this.client.send(
            new ListObjectsCommand({
              Bucket: this.bucket,
              Prefix: full,
              MaxKeys: pageSize,
              ...(marker ? { Marker: marker } : {}),
            }),
          );
          collect(page.Contents);
          if (!page.IsTruncated) break;
          // Without a delimiter V1 omits NextMarker; the last key is then the marker.
          const next = page.NextMarker ?? page.Contents?.at(-1)?.Key;
          if (!next || next === marker)
            throw new Error('the service said the listing is truncated but gave no marker to continue from');
          marker = next;
        }
      } else {
        let token: string | undefined;
        for (;;) {
          const page = await this.client.send(
            new ListObjectsV2Command({
              Bucket: this.bucket,
              Prefix: full,
              MaxKeys: pageSize,
              ...(token ? { ContinuationToken: token } : {}),
            }),
          );
          collect(page.Contents);
          if (!page.IsTruncated) break;
          if (!page.NextContinuationToken)
            throw new Error('the service said the listing is truncated but gave no continuation token');
          token = page.NextContinuationToken;
        }
      }
    } catch (err) {
      throw new Error(`listing "${prefix}" in ${this.where} failed: ${describeS3Error(err)}`, { cause: err });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async get(key: string): Promise<{ body: Readable; size: number }> {
    const fullKey = this.fullKey(key);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: fullKey }));
      if (!(out.Body instanceof Readable)) throw new Error('the SDK returned no Node stream for the object body');
      return { body: out.Body, size: out.ContentLength ?? 0 };
    } catch (err) {
      if (errorName(err) === 'NoSuchKey') throw new NotFoundError(key, this.location);
      throw new Error(`reading "${key}" from ${this.where} failed: ${describeS3Error(err)}`, { cause: err });
    }
  }

  async delete(key: string): Promise<void> {
    const fullKey = this.fullKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: fullKey }));
    } catch (err) {
      // S3 answers 204 for a missing key; some compatible services answer NoSuchKey.
      if (errorName(err) === 'NoSuchKey') return;
      throw new Error(`deleting "${key}" from ${this.where} failed: ${describeS3Error(err)}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
    this.agent?.destroy();
    return Promise.resolve();
  }
}

/** Opens `s3://bucket/prefix` with the options under `store.s3`. */
export function openS3Store(url: string, s3: S3Config, tuning: Pick<S3StoreOptions, 'pageSize'> = {}): S3Store {
  const { bucket, prefix } = parseBucketUrl(url);
  return new S3Store({
    bucket,
    prefix,
    location: `s3://${bucket}${prefix ? `/${prefix}` : ''}`,
    s3,
    listing: 'v2',
    ...tuning,
  });
}

function createClient(s3: S3Config, httpsAgent: HttpsAgent | undefined): S3Client {
  // Third-party services often reject the CRC32 headers newer SDKs send by default.
  const checksums = s3.endpoint ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
  return new S3Client({
    // S3-compatible services accept any region name, but the SDK needs one to sign.
    ...(s3.region ? { region: s3.region } : s3.endpoint ? { region: 'us-east-1' } : {}),
    ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
    forcePathStyle: s3.forcePathStyle ?? false,
    ...(s3.accessKeyId && s3.secretAccessKey
      ? {
          credentials: {
            accessKeyId: s3.accessKeyId,
            secretAccessKey: s3.secretAccessKey,
            ...(s3.sessionToken ? { sessionToken: s3.sessionToken } : {}),
          },
        }
      : {}),
    requestChecksumCalculation: checksums,
    responseChecksumValidation: checksums,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 30_000,
      // A server that stops answering fails the request instead of holding the upload until snapshot.timeout.
      socketTimeout: 5 * 60_000,
      ...(httpsAgent ? { httpsAgent } : {}),
    }),
  });
}

function readCa(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`store.s3.caFile: cannot read "${path}": ${messageOf(err)}`);
  }
}

export interface MultipartUpload {
  key: string;
  uploadId: string;
  initiated: Date;
}

/** The uploads started more than `olderThanMs` before `nowMs`: surely no longer running. */
export function staleUploads(
  uploads: readonly MultipartUpload[],
  nowMs: number,
  olderThanMs: number,
): MultipartUpload[] {
  return uploads.filter((u) => nowMs - u.initiated.getTime() > olderThanMs);
}

/**
 * The ETag S3 gives an object completed from these parts: the MD5 of the parts' binary MD5s in
 * part order, then `-<count>`, quoted. Undefined when a part's ETag is not a plain MD5 (SSE-KMS,
 * SSE-C and some compatible services answer other ETags): then nothing can be told from it.
 */
export function multipartEtag(parts: readonly { num: number; etag: string }[]): string | undefined {
  const md5s: Buffer[] = [];
  for (const p of [...parts].sort((a, b) => a.num - b.num)) {
    const hex = /^"?([0-9a-fA-F]{32})"?$/.exec(p.etag)?.[1];
    if (hex === undefined) return undefined;
    md5s.push(Buffer.from(hex, 'hex'));
  }
  if (md5s.length === 0) return undefined;
  return `"${createHash('md5').update(Buffer.concat(md5s)).digest('hex')}-${md5s.length}"`;
}

/** S3's ETag is the MD5 of the bytes for plain and SSE-S3 objects only; SSE-KMS and SSE-C ETags are not. */
function opaqueEncryption(out: {
  ServerSideEncryption?: string | undefined;
  SSECustomerAlgorithm?: string | undefined;
}): boolean {
  return out.ServerSideEncryption?.startsWith('aws:kms') === true || out.SSECustomerAlgorithm !== undefined;
}
