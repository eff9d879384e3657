/**
 * Oracle Cloud Infrastructure Object Storage, through the official SDK (oci-objectstorage), signed
 * with an API key. Uploads go through the multipart API by hand rather than the SDK's UploadManager:
 * the SDK inspects a Buffer body with Object.keys(), which for a 10 MiB part allocates ten million
 * strings (seconds of CPU, ~500 MB of RSS), so every body is handed over as a stream of one Buffer.
 * The upload loop and its fixed pool of part buffers (partSize x queueSize, reused) are shared with
 * S3 (worker/stores/multipart.ts); the object appears only when the commit succeeds: that is what
 * makes put atomic. Objects smaller than one part take a single PutObject.
 */
import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { setTimeout as sleep } from 'node:timers/promises';
import * as common from 'oci-common';
import { ObjectStorageClient } from 'oci-objectstorage';
import { ConfigError } from '../../core/errors.js';
import { GarbageBound } from '../../core/garbage-bound.js';
import { redactUrl } from './bucket-url.js';
import { multipartPut } from './multipart.js';
import { resolveOciCredentials, type OciConfig, type OciCredentials } from './oci-auth.js';
import { describeOciError, isNotFound, isRetryable, ociFailure } from './oci-errors.js';
import { assertSafeKey, joinKey, NotFoundError, type ObjectInfo, type PutOptions, type Store } from './store.js';

const MIB = 1024 * 1024;

/** Knobs tests turn to cross page and part boundaries with little data, and to keep retries short. */
export interface OciTuning {
  /** Objects per list call; 1000 is OCI's maximum. */
  pageSize?: number;
  /** Part size in bytes, overriding store.oci.partSizeMiB. */
  partSize?: number;
  /** Attempts of a call that failed in a way another attempt may change (5xx, 429, network). */
  maxAttempts?: number;
  /** First retry delay; doubles on each attempt, with jitter. */
  retryDelayMs?: number;
  /** A connection with no data in either direction for this long is cut (default 5 minutes). */
  idleTimeoutMs?: number;
}

export interface OciStoreOptions extends OciTuning {
  namespace: string;
  bucket: string;
  /** Base prefix every key lives under, without leading or trailing slash; may be empty. */
  prefix: string;
  credentials: OciCredentials;
  /** Region id; the endpoint is derived from it unless `endpoint` is given. */
  region: string | undefined;
  endpoint: string | undefined;
  partSize: number;
  queueSize: number;
}

export class OciStore implements Store {
  readonly location: string;
  readonly endpoint: string;
  readonly namespace: string;
  readonly bucket: string;
  /** Base prefix of the store's keys inside the bucket, without slashes at either end. */
  readonly prefix: string;
  /** For provider-specific operations such as the lifecycle policy (oci-lifecycle.ts). */
  readonly client: ObjectStorageClient;
  readonly where: string;
  private readonly agents: { http: HttpAgent; https: HttpsAgent };
  private readonly maxAttempts: number;
  private readonly retryDelayMs: number;

  constructor(private readonly options: OciStoreOptions) {
    this.namespace = options.namespace;
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    this.maxAttempts = options.maxAttempts ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? 1000;
    const { credentials } = options;
    const provider = new common.SimpleAuthenticationDetailsProvider(
      credentials.tenancy,
      credentials.user,
      credentials.fingerprint,
      credentials.privateKey,
      null,
    );
    const retryDelayMs = this.retryDelayMs;
    const idle = options.idleTimeoutMs ?? 5 * 60_000;
    this.agents = {
      // `timeout` too: the agent resets a reused socket's timer to it.
      http: withIdleTimeout(new HttpAgent({ keepAlive: true, maxSockets: 16, timeout: idle }), idle),
      https: withIdleTimeout(new HttpsAgent({ keepAlive: true, maxSockets: 16, timeout: idle }), idle),
    };
    this.client = new ObjectStorageClient(
      { authenticationDetailsProvider: provider },
      {
        // The SDK's default circuit breaker would refuse every call for 30 s after a burst of
        // failures; the job queue already retries whole snapshots with backoff.
        circuitBreaker: new common.CircuitBreaker({ disableClientCircuitBreaker: true }),
        // With an agent the SDK sends through node-fetch and Node's http module, which writes a
        // body as it is read; the built-in fetch copies every chunk first (~2x the bytes in memory).
        httpOptions: { agent: (url: URL) => (url.protocol === 'http:' ? this.agents.http : this.agents.https) },
        retryConfiguration: {
          terminationStrategy: new common.MaxAttemptsTerminationStrategy(this.maxAttempts),
          delayStrategy: { delay: (ctx) => (retryDelayMs * 2 ** ctx.attemptCount * (0.5 + Math.random() / 2)) / 1000 },
        },
      },
    );
    if (options.endpoint) this.client.endpoint = options.endpoint.replace(/\/+$/, '');
    else if (options.region) this.client.regionId = options.region;
    // The SDK keeps a template like `objectstorage.<region>.{dualStack?ds.oci.:}oraclecloud.com`; show the IPv4 one.
    this.endpoint = redactUrl(this.client.endpoint.replace(/\{dualStack\?[^:}]*:([^}]*)\}/g, '$1'));
    this.location = `oci://${this.namespace}/${this.bucket}${this.prefix ? `/${this.prefix}` : ''}${options.region ? `?region=${options.region}` : ''}`;
    this.where = `${this.location} (endpoint ${this.endpoint})`;
  }

  /**
   * Makes sure the bucket exists: HeadBucket, then CreateBucket in the tenancy's root compartment
   * when it is missing and `create` is on (the original service did the same). Never creates when off.
   */
  async ensureBucket(create: boolean): Promise<'exists' | 'created'> {
    try {
      await this.client.headBucket(this.names);
      return 'exists';
    } catch (err) {
      const { status } = ociFailure(err);
      if (status === 403 || status === 401)
        throw new Error(`bucket "${this.bucket}" at ${this.where}: HeadBucket was refused: ${this.describe(err)}`, {
          cause: err,
        });
      if (status !== 404)
        throw new Error(`bucket "${this.bucket}" at ${this.where}: ${this.describe(err)}`, { cause: err });
    }
    if (!create)
      throw new Error(
        `bucket "${this.bucket}" at ${this.where} does not exist, and store.createBucket is off: create the bucket, or set store.createBucket: true`,
      );
    try {
      await this.client.createBucket({
        namespaceName: this.namespace,
        createBucketDetails: { name: this.bucket, compartmentId: this.options.credentials.tenancy },
      });
    } catch (err) {
      const { status } = ociFailure(err);
      // Another worker won the race: the bucket is there.
      if (status === 409) return 'exists';
      if (status === 403 || status === 404)
        throw new Error(
          `bucket "${this.bucket}" at ${this.where} does not exist and CreateBucket was refused (HTTP ${status}): the user's group needs "manage buckets" in the tenancy's root compartment (policy: allow group <group> to manage buckets in tenancy), or create the bucket and set store.createBucket: false`,
          { cause: err },
        );
      throw new Error(`bucket "${this.bucket}" at ${this.where}: CreateBucket failed: ${this.describe(err)}`, {
        cause: err,
      });
    }
    return 'created';
  }

  private fullKey(key: string): string {
    assertSafeKey(key);
    return joinKey(this.prefix, key);
  }

  private describe(err: unknown): string {
    return describeOciError(err, { namespace: this.namespace, bucket: this.bucket, endpoint: this.endpoint });
  }

  private get names() {
    return { namespaceName: this.namespace, bucketName: this.bucket };
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<{ size: number }> {
    const { contentType } = options;
    let objectName: string;
    try {
      objectName = this.fullKey(key);
    } catch (err) {
      body.destroy(err as Error);
      throw err;
    }
    const typed = contentType ? { contentType } : {};
    /** Each part's MD5 as OCI computed it (opc-content-md5), by upload: what a lost commit is checked by. */
    const partMd5s = new Map<string, Map<number, string>>();
    // Each part's request leaves promoted garbage (the SDK's objects, the slices' copies) that V8
    // alone let pile up for a whole 2 GiB upload (core/garbage-bound.ts).
    const bound = new GarbageBound();
    return multipartPut(
      body,
      {
        single: async (data) => {
          await this.withRetries(() =>
            this.client.putObject({
              ...this.names,
              objectName,
              contentLength: data.length,
              putObjectBody: bodyOf(data),
              ...typed,
            }),
          );
        },
        create: async () =>
          (
            await this.client.createMultipartUpload({
              ...this.names,
              createMultipartUploadDetails: { object: objectName, ...typed },
            })
          ).multipartUpload.uploadId,
        part: async (uploadId, num, data) => {
          const { etag, md5 } = await this.uploadPart(objectName, uploadId, num, data);
          bound.observe(data.length);
          const md5s = partMd5s.get(uploadId) ?? new Map<number, string>();
          partMd5s.set(uploadId, md5s.set(num, md5));
          return etag;
        },
        complete: async (uploadId, parts) => {
          try {
            await this.client.commitMultipartUpload({
              ...this.names,
              objectName,
              uploadId,
              commitMultipartUploadDetails: { partsToCommit: parts.map((p) => ({ partNum: p.num, etag: p.etag })) },
            });
          } catch (err) {
            // The SDK retries a commit whose answer was lost (a timeout, a proxy's 5xx), and the retry
            // finds the upload gone because the first one committed it. Then the object is ours
            // when its multipart MD5 is the one of the parts we sent; anything else is a failure.
            if (!isNotFound(err) || !(await this.committedFrom(objectName, partMd5s.get(uploadId), parts.length)))
              throw err;
          } finally {
            partMd5s.delete(uploadId);
          }
        },
        abort: (uploadId) => this.abortUpload(objectName, uploadId),
        remove: async () => {
          await this.client.deleteObject({ ...this.names, objectName });
        },
        describe: (err) => this.describe(err),
      },
      {
        key,
        where: this.where,
        partSize: this.options.partSize,
        parallel: this.options.queueSize,
        signal: options.signal,
      },
    );
  }

  /**
   * Whether `objectName` is the object a multipart commit of these parts made: OCI's multipart MD5
   * is the MD5 of the parts' binary MD5s in order, then `-<count>`.
   */
  private async committedFrom(
    objectName: string,
    md5s: Map<number, string> | undefined,
    count: number,
  ): Promise<boolean> {
    if (md5s === undefined || md5s.size !== count) return false;
    const ordered = [...md5s].sort(([a], [b]) => a - b).map(([, md5]) => Buffer.from(md5, 'base64'));
    const expected = `${createHash('md5').update(Buffer.concat(ordered)).digest('base64')}-${count}`;
    try {
      const head = await this.client.headObject({ ...this.names, objectName });
      return head.opcMultipartMd5 === expected;
    } catch {
      return false;
    }
  }

  private async uploadPart(
    objectName: string,
    uploadId: string,
    uploadPartNum: number,
    data: Buffer,
  ): Promise<{ etag: string; md5: string }> {
    const out = await this.withRetries(() =>
      this.client.uploadPart({
        ...this.names,
        objectName,
        uploadId,
        uploadPartNum,
        contentLength: data.length,
        uploadPartBody: bodyOf(data),
      }),
    );
    if (!out.eTag) throw new Error(`the service returned no ETag for part ${uploadPartNum}`);
    return { etag: out.eTag, md5: out.opcContentMd5 };
  }

  /**
   * The SDK does not retry calls with a stream body (it cannot replay a stream); ours are one
   * Buffer in memory, so they can be sent again.
   */
  private async withRetries<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (attempt >= this.maxAttempts || !isRetryable(err)) throw err;
        await sleep(this.retryDelayMs * 2 ** (attempt - 1) * (0.5 + Math.random() / 2));
      }
    }
  }

  /** Sends AbortMultipartUpload and says how it went, for the error message. */
  private async abortUpload(objectName: string, uploadId: string): Promise<string> {
    try {
      await this.client.abortMultipartUpload({ ...this.names, objectName, uploadId });
      return '; the multipart upload was aborted, nothing was stored';
    } catch (err) {
      return (
        `; aborting the multipart upload also failed (${this.describe(err)}): no object is visible, but its parts` +
        ' use space until a lifecycle rule with target multipart-uploads and action ABORT removes them'
      );
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const full = joinKey(this.prefix, prefix);
    const base = this.prefix ? `${this.prefix}/` : '';
    const out: ObjectInfo[] = [];
    let start: string | undefined;
    try {
      for (;;) {
        const page = await this.client.listObjects({
          ...this.names,
          prefix: full,
          limit: this.options.pageSize ?? 1000,
          // Without `fields` OCI returns names only.
          fields: 'name,size,timeModified',
          ...(start !== undefined ? { start } : {}),
        });
        for (const o of page.listObjects.objects) {
          // Consoles create zero-byte "folder" objects; they are not snapshots.
          if (o.name.endsWith('/') || !o.name.startsWith(base)) continue;
          const modified = o.timeModified ?? o.timeCreated;
          out.push({
            key: o.name.slice(base.length),
            size: o.size ?? 0,
            ...(modified ? { modified: new Date(modified) } : {}),
          });
        }
        const next = page.listObjects.nextStartWith;
        if (!next) break;
        if (start !== undefined && next <= start)
          throw new Error(`the service's nextStartWith "${next}" does not advance the listing`);
        start = next;
      }
    } catch (err) {
      throw new Error(`listing "${prefix}" in ${this.where} failed: ${this.describe(err)}`, { cause: err });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async get(key: string): Promise<{ body: Readable; size: number }> {
    const objectName = this.fullKey(key);
    try {
      const out = await this.client.getObject({ ...this.names, objectName });
      const value = out.value;
      const body =
        value instanceof Readable ? value : Readable.fromWeb(value as unknown as WebReadableStream<Uint8Array>);
      return { body, size: out.contentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err, 'ObjectNotFound')) throw new NotFoundError(key, this.location);
      throw new Error(`reading "${key}" from ${this.where} failed: ${this.describe(err)}`, { cause: err });
    }
  }

  async delete(key: string): Promise<void> {
    const objectName = this.fullKey(key);
    try {
      await this.client.deleteObject({ ...this.names, objectName });
    } catch (err) {
      if (isNotFound(err, 'ObjectNotFound')) return;
      throw new Error(`deleting "${key}" from ${this.where} failed: ${this.describe(err)}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    this.client.close();
    this.agents.http.destroy();
    this.agents.https.destroy();
    return Promise.resolve();
  }
}

/** Opens `oci://namespace/bucket/prefix?region=us-ashburn-1` with the options under `store.oci`. */
export function openOciStore(
  url: string,
  oci: OciConfig,
  tuning: OciTuning = {},
  env: NodeJS.ProcessEnv = process.env,
): OciStore {
  const { namespace, bucket, prefix, region: urlRegion } = parseOciUrl(url);
  if (urlRegion && oci.region && urlRegion !== oci.region) {
    throw new ConfigError(
      `store.url says region "${urlRegion}" but store.oci.region says "${oci.region}"; give the region once`,
    );
  }
  const credentials = resolveOciCredentials(oci, env);
  const region = urlRegion ?? credentials.region;
  if (!region && !oci.endpoint) {
    throw new ConfigError(
      `store.oci: no region for ${url.split('?')[0] ?? url}: add ?region=us-ashburn-1 to store.url, set store.oci.region, or set region in ${credentials.source}`,
    );
  }
  return new OciStore({
    namespace,
    bucket,
    prefix,
    credentials,
    region,
    endpoint: oci.endpoint,
    partSize: oci.partSizeMiB * MIB,
    queueSize: oci.queueSize,
    ...tuning,
  });
}

const EXAMPLE = 'oci://namespace/bucket/prefix?region=us-ashburn-1';

export function parseOciUrl(url: string): {
  namespace: string;
  bucket: string;
  prefix: string;
  region: string | undefined;
} {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`store.url: "${redactUrl(url)}" is not a valid URL (expected ${EXAMPLE})`);
  }
  if (parsed.username || parsed.password) {
    throw new ConfigError(
      `store.url: credentials do not belong in the store URL; set them under store.oci (or use an OCI config file) and write ${EXAMPLE}`,
    );
  }
  if (!parsed.hostname) throw new ConfigError(`store.url: no namespace in "${redactUrl(url)}" (expected ${EXAMPLE})`);
  if (parsed.port)
    throw new ConfigError(
      `store.url: a namespace has no port; set the service address in store.oci.endpoint (expected ${EXAMPLE})`,
    );
  for (const name of parsed.searchParams.keys()) {
    if (name !== 'region')
      throw new ConfigError(
        `store.url: unknown parameter "${name}" (allowed: region); other OCI options go under store.oci`,
      );
  }
  const path = decodeURIComponent(parsed.pathname).replace(/^\/+|\/+$/g, '');
  const slash = path.indexOf('/');
  const bucket = slash < 0 ? path : path.slice(0, slash);
  const prefix = slash < 0 ? '' : path.slice(slash + 1);
  if (!/^[A-Za-z0-9._-]{1,256}$/.test(bucket)) {
    throw new ConfigError(
      `store.url: ${bucket ? `"${bucket}" is not a bucket name (letters, digits, . _ -)` : 'no bucket'} in "${redactUrl(url)}" (expected ${EXAMPLE})`,
    );
  }
  if (prefix) {
    try {
      assertSafeKey(prefix);
    } catch {
      throw new ConfigError(`store.url: prefix "${prefix}" has empty, "." or ".." segments`);
    }
  }
  const region = parsed.searchParams.get('region') ?? undefined;
  if (region !== undefined && !/^[a-z0-9-]+$/.test(region))
    throw new ConfigError(`store.url: "${region}" is not an OCI region id like us-ashburn-1`);
  return { namespace: parsed.hostname, bucket, prefix, region };
}

/**
 * Neither the SDK nor node-fetch has a timeout that spares long streams, so the sockets carry one:
 * a server that stops answering fails the call instead of holding it until snapshot.timeout.
 */
function withIdleTimeout<A extends HttpAgent>(agent: A, ms: number): A {
  const create = agent.createConnection.bind(agent);
  agent.createConnection = (opts, callback) => {
    const socket = create(opts, callback);
    if (socket instanceof Socket) {
      socket.setTimeout(ms);
      socket.on('timeout', () => socket.destroy(new Error(`the connection was idle for ${Math.round(ms / 1000)} s`)));
    }
    return socket;
  };
  return agent;
}

const BODY_SLICE = 256 * 1024;

/**
 * A body the SDK passes through untouched (see the module comment for why not a Buffer), in
 * slices: fetch copies each chunk it reads, and a copy of a slice is gone long before one of a part.
 */
function bodyOf(data: Buffer): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += BODY_SLICE) yield data.subarray(i, Math.min(data.length, i + BODY_SLICE));
    })(),
    { objectMode: false },
  );
}
