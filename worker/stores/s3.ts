/**
 * AWS S3 and S3-compatible services (MinIO, Ceph, R2, NCP). Uploads stream through lib-storage's
 * multipart upload, so memory stays near partSize x (queueSize + 1) whatever the snapshot's size,
 * and the object appears only when CompleteMultipartUpload succeeds: that is what makes put atomic.
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  S3Client,
  type BucketLocationConstraint,
  type _Object,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { S3Config } from '../../core/config/index.js';
import { ConfigError, messageOf } from '../../core/errors.js';
import { parseBucketUrl, redactUrl } from './bucket-url.js';
import { describeS3Error, errorName } from './s3-errors.js';
import {
  assertSafeKey,
  joinKey,
  NotFoundError,
  type ObjectInfo,
  type PutOptions,
  type Store,
  toBuffer,
} from './store.js';

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

export class S3Store implements Store {
  readonly location: string;
  /** The service's address, or undefined for AWS's own endpoints; for logs. */
  readonly endpoint: string | undefined;
  private readonly client: S3Client;
  private readonly agent: HttpsAgent | undefined;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly where: string;
  /** Running uploads by full key, told when one of their S3 calls has finally failed (after retries). */
  private readonly watchers = new Map<string, (err: unknown) => void>();

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
    // lib-storage notices a failed part only once the other part uploaders finish, and one of
    // them may be waiting for input that is not coming; this lets put() fail the input at once.
    this.client.middlewareStack.add(
      (next) => async (args) => {
        try {
          return await next(args);
        } catch (err) {
          const input: object = args.input;
          if ('Key' in input && typeof input.Key === 'string') this.watchers.get(input.Key)?.(err);
          throw err;
        }
      },
      { step: 'initialize', name: 'uploadFailureWatch' },
    );
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
    const { signal } = options;
    let size = 0;
    let upload: Upload | undefined;
    let fullKey: string | undefined;
    let providerFailure: Error | undefined;
    const onAbort = () => body.destroy(abortError(signal));
    try {
      fullKey = this.fullKey(key);
      signal?.throwIfAborted();
      // Every way to fail goes through the input: destroying `body` ends lib-storage's read of it,
      // so its part uploaders stop even when the producer has gone quiet, and done() rejects only
      // after the parts in flight have settled, so the abort below cannot race a late part.
      this.watchers.set(fullKey, (err) => {
        providerFailure ??= new Error(`upload of "${key}" to ${this.where} failed: ${describeS3Error(err)}`, {
          cause: err,
        });
        body.destroy(providerFailure);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      // lib-storage destroys the stream it reads (without an error) when it stops early; a wrapper
      // keeps `body` for us to destroy with the real error.
      const feed = Readable.from(
        (async function* () {
          for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<unknown>) {
            const bytes = toBuffer(chunk);
            size += bytes.length;
            yield bytes;
          }
        })(),
        { objectMode: false },
      );
      // That early stop destroys `feed` with an AbortError nobody listens to; failures reach us through done().
      feed.on('error', () => undefined);
      upload = new Upload({
        client: this.client,
        params: {
          Bucket: this.bucket,
          Key: fullKey,
          Body: feed,
          ...(options.contentType ? { ContentType: options.contentType } : {}),
        },
        partSize: this.options.s3.partSizeMiB * MIB,
        queueSize: this.options.s3.queueSize,
        // We abort ourselves: lib-storage would report a failed abort instead of the failure that caused it.
        leavePartsOnError: true,
      });
      await upload.done();
      this.watchers.delete(fullKey);
      if (signal?.aborted) {
        // Aborted while the upload completed: honour the abort rather than keep an object the caller gave up on.
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: fullKey })).catch(() => undefined);
        throw abortError(signal);
      }
      return { size };
    } catch (err) {
      // Our own clean-up calls below must not count as the upload failing.
      if (fullKey !== undefined) this.watchers.delete(fullKey);
      // Read before destroying: an input that failed by itself already holds its error.
      const inputError = providerFailure ? undefined : (body.errored ?? undefined);
      const cause = signal?.aborted ? abortError(signal) : (providerFailure ?? inputError ?? toError(err));
      body.destroy(cause);
      const aborted = upload?.uploadId && fullKey ? await this.abortUpload(fullKey, upload.uploadId) : '';
      if (signal?.aborted)
        throw new Error(`upload of "${key}" to ${this.where} stopped: aborted (${messageOf(cause)})${aborted}`, {
          cause: err,
        });
      if (providerFailure) throw new Error(`${providerFailure.message}${aborted}`, { cause: err });
      if (inputError)
        throw new Error(
          `upload of "${key}" to ${this.where} stopped: the data to upload failed: ${messageOf(inputError)}${aborted}`,
          { cause: err },
        );
      throw new Error(`upload of "${key}" to ${this.where} failed: ${describeS3Error(err)}${aborted}`, { cause: err });
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (fullKey !== undefined) this.watchers.delete(fullKey);
    }
  }

  /** Sends AbortMultipartUpload and says how it went, for the error message. */
  private async abortUpload(fullKey: string, uploadId: string): Promise<string> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId }),
      );
      return '; the multipart upload was aborted, nothing was stored';
    } catch (err) {
      return (
        `; aborting the multipart upload also failed (${describeS3Error(err)}): no object is visible, but its parts` +
        ' use space until an AbortIncompleteMultipartUpload lifecycle rule removes them'
      );
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

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function abortError(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new Error('the upload was aborted', { cause: reason });
}
