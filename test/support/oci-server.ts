/**
 * A local OCI Object Storage: a small HTTP server on 127.0.0.1 that speaks the documented REST API
 * (https://docs.oracle.com/iaas/api/#/en/objectstorage/20160918/) for what the store uses, and
 * authenticates every request the way OCI does: a draft-cavage HTTP signature (rsa-sha256) over
 * (request-target), host and date/x-date, plus content-type, content-length and x-content-sha256
 * for requests with a JSON body, verified with the public key registered for the keyId
 * `tenancy/user/fingerprint`. Anything unsigned, signed with another key, signed over too few
 * headers, stale, or with a body that does not match its hash gets 401 NotAuthenticated.
 * Objects and parts live in files under a temp directory, so benchmarks can push hundreds of MiB.
 */
import { createHash, createPublicKey, randomUUID, verify, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ociFingerprint } from '../../worker/stores/oci-auth.js';
import { tempDir } from './tmp.js';
import { Answer } from './http-answer.js';

export interface OciApiKey {
  tenancy: string;
  user: string;
  /** PEM or KeyObject; the fingerprint is derived from it as OCI does. */
  publicKey: string | KeyObject;
}

export interface OciServerOptions {
  namespace: string;
  buckets: string[];
  /** API keys the server accepts. */
  keys: OciApiKey[];
}

export type OciOperation =
  | 'GetNamespace'
  | 'HeadBucket'
  | 'CreateBucket'
  | 'PutObject'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'ListObjects'
  | 'CreateMultipartUpload'
  | 'ListMultipartUploads'
  | 'UploadPart'
  | 'CommitMultipartUpload'
  | 'AbortMultipartUpload'
  | 'GetObjectLifecyclePolicy'
  | 'PutObjectLifecyclePolicy'
  | 'DeleteObjectLifecyclePolicy';

export interface OciRequest {
  op: OciOperation;
  method: string;
  /** The request's path, percent-encoded as sent (no query). */
  path: string;
  bucket?: string;
  object?: string;
  query: URLSearchParams;
  /** Set once answered. */
  status?: number;
  /** The keyId of a request whose signature verified. */
  keyId?: string;
  /** The headers its verified signature covers, as listed in the Authorization header. */
  signedHeaders?: string[];
  /** The parsed JSON body of a request that has one (CreateBucket, PutObjectLifecyclePolicy, ...). */
  body?: unknown;
}

/**
 * What a fault answers instead of the real handler; `hang` never answers, as a stuck server;
 * `lost` lets the request take effect and then answers that error, as a reply lost on the way back
 * (a timeout or a proxy's 5xx after the service had done it): the client's retry meets the new state.
 */
export type OciFault =
  { status: number; code: string; message?: string } | { hang: true } | { lost: { status: number; code: string } };

export interface LifecycleRule {
  name: string;
  action: string;
  timeAmount: number;
  timeUnit: string;
  isEnabled: boolean;
  target?: string;
  objectNameFilter?: { inclusionPrefixes?: string[]; inclusionPatterns?: string[]; exclusionPatterns?: string[] };
}

interface StoredObject {
  file: string;
  size: number;
  md5: string;
  etag: string;
  created: Date;
  modified: Date;
  contentType: string;
  /** Set for an object committed from a multipart upload: OCI answers it instead of Content-MD5. */
  multipartMd5?: string;
}

interface Upload {
  bucket: string;
  object: string;
  created: Date;
  parts: Map<number, { file: string; size: number; etag: string; md5: string }>;
}

export interface OciServer {
  endpoint: string;
  namespace: string;
  /** Every authenticated or rejected request, in arrival order. */
  requests: OciRequest[];
  /** Answers a request with the fault instead of handling it when the rule returns one (after authentication). */
  fault(rule: ((r: OciRequest) => OciFault | undefined) | undefined): void;
  /** Object names in a bucket, sorted. */
  objectNames(bucket: string): string[];
  /** Every bucket, including those made by CreateBucket. */
  bucketNames(): string[];
  /** What CreateBucket made, with the compartment it was asked for. */
  createdBuckets: readonly { name: string; compartmentId: string }[];
  /** Multipart uploads neither committed nor aborted. */
  openUploads(): { bucket: string; object: string; parts: number }[];
  lifecyclePolicy(bucket: string): LifecycleRule[] | undefined;
  /** Replaces a bucket's policy (new ETag) as another client would. */
  setLifecyclePolicy(bucket: string, items: LifecycleRule[]): void;
  stop(): Promise<void>;
}

const SKEW_MS = 5 * 60_000;
const JSON_LIMIT = 1024 * 1024;
const LIFECYCLE_ACTIONS = new Set(['ARCHIVE', 'INFREQUENT_ACCESS', 'DELETE', 'ABORT']);
const LIFECYCLE_TARGETS = new Set(['objects', 'multipart-uploads', 'previous-object-versions']);

export async function startOciServer(options: OciServerOptions): Promise<OciServer> {
  const dir = await tempDir('oci-fake');
  const keys = new Map<string, KeyObject>();
  for (const k of options.keys) {
    const pub = typeof k.publicKey === 'string' ? createPublicKey(k.publicKey) : k.publicKey;
    keys.set(`${k.tenancy}/${k.user}/${ociFingerprint(pub)}`, pub);
  }
  const buckets = new Map<string, Map<string, StoredObject>>(options.buckets.map((b) => [b, new Map()]));
  const policies = new Map<string, { items: LifecycleRule[]; etag: string; created: Date }>();
  const uploads = new Map<string, Upload>();
  const requests: OciRequest[] = [];
  const created: { name: string; compartmentId: string }[] = [];
  let faultRule: ((r: OciRequest) => OciFault | undefined) | undefined;

  const bucketOf = (name: string | undefined, namespace: string): Map<string, StoredObject> => {
    if (namespace !== options.namespace)
      throw new Answer(
        404,
        'NamespaceNotFound',
        `You do not have authorization to perform this request, or the requested resource could not be found.`,
      );
    const b = name === undefined ? undefined : buckets.get(name);
    if (!b)
      throw new Answer(
        404,
        'BucketNotFound',
        `Either the bucket named '${name ?? ''}' does not exist in the namespace '${namespace}' or you are not authorized to access it`,
      );
    return b;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, record: OciRequest, route: Route): Promise<void> => {
    const body = route.signedBody ? await readJson(req) : undefined;
    const auth = authenticate(req, route, body?.raw, keys);
    record.keyId = auth.keyId;
    record.signedHeaders = auth.signed;
    if (body?.value !== undefined) record.body = body.value;
    const fault = faultRule?.(record);
    if (fault && 'hang' in fault) return new Promise<void>(() => {});
    if (fault && 'lost' in fault) {
      // A response with no socket: the handler's answer goes nowhere.
      await perform(new ServerResponse(req), record, route, body);
      throw new Answer(fault.lost.status, fault.lost.code, `injected ${fault.lost.code} after the request took effect`);
    }
    if (fault) throw new Answer(fault.status, fault.code, fault.message ?? `injected ${fault.code}`);
    return perform(res, record, route, body);
  };

  const perform = async (
    res: ServerResponse,
    record: OciRequest,
    route: Route,
    body: { raw: Buffer; value: unknown } | undefined,
  ): Promise<void> => {
    const req = res.req;
    const q = record.query;
    switch (route.op) {
      case 'GetNamespace':
        return json(res, 200, options.namespace);
      case 'HeadBucket':
        bucketOf(record.bucket, route.namespace);
        return empty(res, 200, { etag: 'bucket' });
      case 'CreateBucket': {
        if (route.namespace !== options.namespace) bucketOf(undefined, route.namespace);
        const details = (body?.value ?? {}) as { name?: unknown; compartmentId?: unknown };
        if (typeof details.name !== 'string' || !/^[A-Za-z0-9_.-]{1,256}$/.test(details.name))
          throw new Answer(400, 'InvalidParameter', 'name is required and must be a valid bucket name');
        if (typeof details.compartmentId !== 'string' || details.compartmentId === '')
          throw new Answer(400, 'InvalidParameter', 'compartmentId is required');
        // As OCI: a compartment the caller's tenancy does not own is "not authorized or not found".
        if (!record.keyId?.startsWith(`${details.compartmentId}/`))
          throw new Answer(404, 'NotAuthorizedOrNotFound', `Authorization failed or requested resource not found.`);
        if (buckets.has(details.name))
          throw new Answer(409, 'BucketAlreadyExists', `Either the bucket '${details.name}' already exists`);
        buckets.set(details.name, new Map());
        created.push({ name: details.name, compartmentId: details.compartmentId });
        return json(res, 200, {
          name: details.name,
          namespace: options.namespace,
          compartmentId: details.compartmentId,
        });
      }
      case 'PutObject': {
        const b = bucketOf(record.bucket, route.namespace);
        const object = requireName(record.object);
        const stored = await receiveBody(req, dir);
        const now = new Date();
        const previous = b.get(object);
        b.set(object, {
          ...stored,
          etag: randomUUID(),
          created: previous?.created ?? now,
          modified: now,
          contentType: req.headers['content-type'] ?? 'application/octet-stream',
        });
        if (previous) await rm(previous.file, { force: true });
        const o = b.get(object) as StoredObject;
        return empty(res, 200, { etag: o.etag, 'opc-content-md5': o.md5, 'last-modified': o.modified.toUTCString() });
      }
      case 'GetObject':
      case 'HeadObject': {
        const b = bucketOf(record.bucket, route.namespace);
        const o = b.get(requireName(record.object));
        if (!o)
          throw new Answer(
            404,
            'ObjectNotFound',
            `The object '${record.object ?? ''}' was not found in the bucket '${record.bucket ?? ''}'`,
          );
        const headers = {
          'content-length': String(o.size),
          'content-type': o.contentType,
          etag: o.etag,
          ...(o.multipartMd5 === undefined ? { 'content-md5': o.md5 } : { 'opc-multipart-md5': o.multipartMd5 }),
          'last-modified': o.modified.toUTCString(),
          'opc-request-id': randomUUID(),
        };
        if (route.op === 'HeadObject') return empty(res, 200, headers);
        res.writeHead(200, headers);
        await pipeline(createReadStream(o.file), res);
        return;
      }
      case 'DeleteObject': {
        const b = bucketOf(record.bucket, route.namespace);
        const name = requireName(record.object);
        const o = b.get(name);
        if (!o)
          throw new Answer(
            404,
            'ObjectNotFound',
            `The object '${name}' was not found in the bucket '${record.bucket ?? ''}'`,
          );
        b.delete(name);
        await rm(o.file, { force: true });
        return empty(res, 204);
      }
      case 'ListObjects': {
        const b = bucketOf(record.bucket, route.namespace);
        const limit = q.has('limit') ? Number(q.get('limit')) : 1000;
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
          throw new Answer(400, 'InvalidParameter', 'limit must be between 1 and 1000');
        const prefix = q.get('prefix') ?? '';
        const start = q.get('start');
        const startAfter = q.get('startAfter');
        const end = q.get('end');
        const fields = new Set((q.get('fields') ?? 'name').split(',').map((f) => f.trim()));
        const names = [...b.keys()]
          .filter(
            (n) =>
              n.startsWith(prefix) &&
              (start === null || n >= start) &&
              (startAfter === null || n > startAfter) &&
              (end === null || n < end),
          )
          .sort();
        const page = names.slice(0, limit);
        const objects = page.map((name) => {
          const o = b.get(name) as StoredObject;
          return {
            name,
            ...(fields.has('size') ? { size: o.size } : {}),
            ...(fields.has('etag') ? { etag: o.etag } : {}),
            ...(fields.has('md5') ? { md5: o.md5 } : {}),
            ...(fields.has('timeCreated') ? { timeCreated: o.created.toISOString() } : {}),
            ...(fields.has('timeModified') ? { timeModified: o.modified.toISOString() } : {}),
          };
        });
        return json(res, 200, { objects, ...(names.length > limit ? { nextStartWith: names[limit] } : {}) });
      }
      case 'CreateMultipartUpload': {
        bucketOf(record.bucket, route.namespace);
        const details = body?.value as { object?: unknown } | undefined;
        if (typeof details?.object !== 'string' || details.object === '')
          throw new Answer(400, 'InvalidParameter', 'object is required');
        const uploadId = randomUUID();
        const created = new Date();
        uploads.set(uploadId, { bucket: record.bucket as string, object: details.object, created, parts: new Map() });
        return json(res, 200, {
          namespace: options.namespace,
          bucket: record.bucket,
          object: details.object,
          uploadId,
          timeCreated: created.toISOString(),
          storageTier: 'Standard',
        });
      }
      case 'ListMultipartUploads': {
        bucketOf(record.bucket, route.namespace);
        const list = [...uploads.entries()].filter(([, u]) => u.bucket === record.bucket);
        return json(
          res,
          200,
          list.map(([uploadId, u]) => ({
            namespace: options.namespace,
            bucket: u.bucket,
            object: u.object,
            uploadId,
            timeCreated: u.created.toISOString(),
          })),
        );
      }
      case 'UploadPart': {
        bucketOf(record.bucket, route.namespace);
        const upload = uploadFor(uploads, q.get('uploadId'), record);
        const num = Number(q.get('uploadPartNum'));
        if (!Number.isInteger(num) || num < 1 || num > 10_000)
          throw new Answer(400, 'InvalidParameter', 'uploadPartNum must be between 1 and 10000');
        const stored = await receiveBody(req, dir);
        const previous = upload.parts.get(num);
        const etag = randomUUID();
        upload.parts.set(num, { file: stored.file, size: stored.size, md5: stored.md5, etag });
        if (previous) await rm(previous.file, { force: true });
        return empty(res, 200, { etag, 'opc-content-md5': stored.md5 });
      }
      case 'CommitMultipartUpload': {
        const b = bucketOf(record.bucket, route.namespace);
        const uploadId = q.get('uploadId');
        const upload = uploadFor(uploads, uploadId, record);
        const details = body?.value as { partsToCommit?: { partNum?: unknown; etag?: unknown }[] } | undefined;
        const wanted = details?.partsToCommit;
        if (!Array.isArray(wanted) || wanted.length === 0)
          throw new Answer(400, 'InvalidParameter', 'partsToCommit is required');
        const chosen = wanted.map((p) => {
          const part = typeof p.partNum === 'number' ? upload.parts.get(p.partNum) : undefined;
          if (!part || part.etag !== p.etag)
            throw new Answer(
              400,
              'InvalidParameter',
              `part ${String(p.partNum)} was not uploaded with etag ${String(p.etag)}`,
            );
          return { num: p.partNum as number, ...part };
        });
        chosen.sort((a, b2) => a.num - b2.num);
        const file = join(dir.path, randomUUID());
        const md5 = createHash('md5');
        const out = createWriteStream(file);
        // One write loop for all parts: a pipeline per part into the same stream left a listener
        // on it per part (MaxListenersExceededWarning from 11 parts on).
        for (const part of chosen) {
          for await (const chunk of createReadStream(part.file) as AsyncIterable<Buffer>) {
            md5.update(chunk);
            if (!out.write(chunk)) await once(out, 'drain');
          }
        }
        await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
        const size = chosen.reduce((n, p) => n + p.size, 0);
        const multipartMd5 = `${createHash('md5')
          .update(Buffer.concat(chosen.map((p) => Buffer.from(p.md5, 'base64'))))
          .digest('base64')}-${chosen.length}`;
        const now = new Date();
        const previous = b.get(upload.object);
        b.set(upload.object, {
          file,
          size,
          md5: md5.digest('base64'),
          etag: randomUUID(),
          created: now,
          modified: now,
          contentType: 'application/octet-stream',
          multipartMd5,
        });
        uploads.delete(uploadId as string);
        for (const part of upload.parts.values()) await rm(part.file, { force: true });
        if (previous) await rm(previous.file, { force: true });
        return empty(res, 200, {
          etag: (b.get(upload.object) as StoredObject).etag,
          'opc-multipart-md5': multipartMd5,
          'last-modified': now.toUTCString(),
        });
      }
      case 'AbortMultipartUpload': {
        bucketOf(record.bucket, route.namespace);
        const uploadId = q.get('uploadId');
        const upload = uploadFor(uploads, uploadId, record);
        uploads.delete(uploadId as string);
        for (const part of upload.parts.values()) await rm(part.file, { force: true });
        return empty(res, 204);
      }
      case 'GetObjectLifecyclePolicy': {
        bucketOf(record.bucket, route.namespace);
        const p = policies.get(record.bucket as string);
        if (!p)
          throw new Answer(
            404,
            'LifecyclePolicyNotFound',
            `There is no lifecycle policy for the bucket '${record.bucket ?? ''}'`,
          );
        res.setHeader('etag', p.etag);
        return json(res, 200, { items: p.items, timeCreated: p.created.toISOString() });
      }
      case 'PutObjectLifecyclePolicy': {
        bucketOf(record.bucket, route.namespace);
        const current = policies.get(record.bucket as string);
        checkPreconditions(req, current?.etag);
        const items = validateLifecycle(body?.value);
        const p = { items, etag: randomUUID(), created: new Date() };
        policies.set(record.bucket as string, p);
        res.setHeader('etag', p.etag);
        return json(res, 200, { items, timeCreated: p.created.toISOString() });
      }
      case 'DeleteObjectLifecyclePolicy': {
        bucketOf(record.bucket, route.namespace);
        checkPreconditions(req, policies.get(record.bucket as string)?.etag);
        policies.delete(record.bucket as string);
        return empty(res, 204);
      }
    }
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://placeholder');
    const record: OciRequest = {
      op: 'GetNamespace',
      method: req.method ?? 'GET',
      path: (req.url ?? '/').split('?')[0] ?? '/',
      query: url.searchParams,
    };
    let route: Route;
    try {
      route = routeOf(req.method ?? 'GET', req.url ?? '/');
    } catch (err) {
      req.resume();
      return fail(res, err);
    }
    record.op = route.op;
    if (route.bucket !== undefined) record.bucket = route.bucket;
    if (route.object !== undefined) record.object = route.object;
    requests.push(record);
    handle(req, res, record, route).then(
      () => (record.status = res.statusCode),
      (err: unknown) => {
        req.resume();
        fail(res, err);
        record.status = res.statusCode;
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    namespace: options.namespace,
    requests,
    fault(rule) {
      faultRule = rule;
    },
    objectNames: (bucket) => [...(buckets.get(bucket)?.keys() ?? [])].sort(),
    bucketNames: () => [...buckets.keys()].sort(),
    createdBuckets: created,
    openUploads: () => [...uploads.values()].map((u) => ({ bucket: u.bucket, object: u.object, parts: u.parts.size })),
    lifecyclePolicy: (bucket) => policies.get(bucket)?.items,
    setLifecyclePolicy: (bucket, items) =>
      void policies.set(bucket, { items: validateLifecycle({ items }), etag: randomUUID(), created: new Date() }),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await dir.remove();
    },
  };
}

interface Route {
  op: OciOperation;
  namespace: string;
  bucket?: string;
  object?: string;
  /** Whether the body is JSON that the signature must cover (everything but object and part uploads). */
  signedBody: boolean;
}

function routeOf(method: string, rawUrl: string): Route {
  const path = rawUrl.split('?')[0] ?? '';
  const seg = path.split('/').slice(1);
  const dec = (s: string | undefined) => (s === undefined ? undefined : decodeURIComponent(s));
  const namespace = dec(seg[1]) ?? '';
  const bucket = dec(seg[3]);
  // Object names are percent-encoded by the SDK (`/` as %2F), but a raw `/` is valid too.
  const object = seg.length > 5 ? dec(seg.slice(5).join('/')) : undefined;
  const is = (m: string, shape: RegExp) => method === m && shape.test(path);
  const r = (op: OciOperation, signedBody = false): Route => ({
    op,
    namespace,
    signedBody,
    ...(bucket !== undefined ? { bucket } : {}),
    ...(object !== undefined ? { object } : {}),
  });
  if (is('GET', /^\/n\/?$/)) return r('GetNamespace');
  if (is('HEAD', /^\/n\/[^/]+\/b\/[^/]+\/?$/)) return r('HeadBucket');
  if (is('POST', /^\/n\/[^/]+\/b\/?$/)) return r('CreateBucket', true);
  if (is('PUT', /^\/n\/[^/]+\/b\/[^/]+\/o\/.+/)) return r('PutObject');
  if (is('GET', /^\/n\/[^/]+\/b\/[^/]+\/o\/.+/)) return r('GetObject');
  if (is('HEAD', /^\/n\/[^/]+\/b\/[^/]+\/o\/.+/)) return r('HeadObject');
  if (is('DELETE', /^\/n\/[^/]+\/b\/[^/]+\/o\/.+/)) return r('DeleteObject');
  if (is('GET', /^\/n\/[^/]+\/b\/[^/]+\/o\/?$/)) return r('ListObjects');
  if (is('POST', /^\/n\/[^/]+\/b\/[^/]+\/u\/?$/)) return r('CreateMultipartUpload', true);
  if (is('GET', /^\/n\/[^/]+\/b\/[^/]+\/u\/?$/)) return r('ListMultipartUploads');
  if (is('PUT', /^\/n\/[^/]+\/b\/[^/]+\/u\/.+/)) return r('UploadPart');
  if (is('POST', /^\/n\/[^/]+\/b\/[^/]+\/u\/.+/)) return r('CommitMultipartUpload', true);
  if (is('DELETE', /^\/n\/[^/]+\/b\/[^/]+\/u\/.+/)) return r('AbortMultipartUpload');
  if (is('GET', /^\/n\/[^/]+\/b\/[^/]+\/l\/?$/)) return r('GetObjectLifecyclePolicy');
  if (is('PUT', /^\/n\/[^/]+\/b\/[^/]+\/l\/?$/)) return r('PutObjectLifecyclePolicy', true);
  if (is('DELETE', /^\/n\/[^/]+\/b\/[^/]+\/l\/?$/)) return r('DeleteObjectLifecyclePolicy');
  throw new Answer(404, 'NotFound', `no such API: ${method} ${path}`);
}

const NOT_AUTHENTICATED = 'The required information to complete authentication was not provided or was incorrect.';

/** Verifies the HTTP signature; returns the keyId and the signed headers, or throws 401 as OCI would. */
function authenticate(
  req: IncomingMessage,
  route: Route,
  rawBody: Buffer | undefined,
  keys: Map<string, KeyObject>,
): { keyId: string; signed: string[] } {
  const deny = (why: string): never => {
    throw new Answer(401, 'NotAuthenticated', `${NOT_AUTHENTICATED} (${why})`);
  };
  const header = req.headers.authorization;
  if (!header?.startsWith('Signature ')) return deny('no Signature authorization header');
  const params = new Map<string, string>();
  for (const m of header.slice('Signature '.length).matchAll(/(\w+)="([^"]*)"/g))
    params.set(m[1] as string, m[2] as string);
  if (params.get('version') !== '1') deny('version must be "1"');
  if (params.get('algorithm') !== 'rsa-sha256') deny('algorithm must be rsa-sha256');
  const keyId = params.get('keyId') ?? deny('no keyId');
  const signature = params.get('signature') ?? deny('no signature');
  const signed = (params.get('headers') ?? 'date').toLowerCase().split(/\s+/).filter(Boolean);
  const method = (req.method ?? 'GET').toUpperCase();
  const required = ['(request-target)', 'host'];
  if (!signed.includes('date') && !signed.includes('x-date')) deny('neither date nor x-date is signed');
  if (route.signedBody && ['POST', 'PUT', 'PATCH'].includes(method))
    required.push('content-length', 'content-type', 'x-content-sha256');
  const unsigned = required.filter((h) => !signed.includes(h));
  if (unsigned.length > 0) deny(`headers not signed: ${unsigned.join(', ')}`);
  const dateHeader = signed.includes('x-date') ? req.headers['x-date'] : req.headers.date;
  const date = Date.parse(typeof dateHeader === 'string' ? dateHeader : '');
  if (!Number.isFinite(date) || Math.abs(Date.now() - date) > SKEW_MS) deny('date missing or more than 5 minutes off');
  const lines = signed.map((h) => {
    if (h === '(request-target)') return `(request-target): ${method.toLowerCase()} ${req.url ?? '/'}`;
    const v = req.headers[h];
    if (v === undefined) return deny(`signed header ${h} is missing`);
    return `${h}: ${Array.isArray(v) ? v.join(', ') : v}`;
  });
  const key = keys.get(keyId) ?? deny('unknown keyId');
  if (!verify('sha256', Buffer.from(lines.join('\n')), key, Buffer.from(signature, 'base64')))
    deny('signature does not verify');
  if (rawBody !== undefined && route.signedBody) {
    const sha = createHash('sha256').update(rawBody).digest('base64');
    if (req.headers['x-content-sha256'] !== sha) deny('x-content-sha256 does not match the body');
    if (req.headers['content-length'] !== String(rawBody.length)) deny('content-length does not match the body');
  }
  return { keyId, signed };
}

async function readJson(req: IncomingMessage): Promise<{ raw: Buffer; value: unknown }> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > JSON_LIMIT) throw new Answer(413, 'RequestEntityTooLarge', 'body too large');
    chunks.push(chunk);
  }
  const raw = Buffer.concat(chunks);
  if (raw.length === 0) return { raw, value: undefined };
  try {
    return { raw, value: JSON.parse(raw.toString('utf8')) as unknown };
  } catch {
    throw new Answer(400, 'InvalidParameter', 'the body is not JSON');
  }
}

/** Streams an object or part body to a file; OCI needs Content-Length and rejects short bodies. */
async function receiveBody(
  req: IncomingMessage,
  dir: { path: string },
): Promise<{ file: string; size: number; md5: string }> {
  const declared = req.headers['content-length'];
  if (declared === undefined) throw new Answer(411, 'MissingContentLength', 'Content-Length is required');
  const file = join(dir.path, randomUUID());
  const md5 = createHash('md5');
  let size = 0;
  try {
    await pipeline(
      req,
      async function* (src: AsyncIterable<Buffer>) {
        for await (const chunk of src) {
          size += chunk.length;
          md5.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(file),
    );
    if (size !== Number(declared))
      throw new Answer(400, 'InvalidContentLength', `received ${size} bytes, Content-Length said ${declared}`);
    await stat(file);
  } catch (err) {
    await rm(file, { force: true });
    throw err;
  }
  return { file, size, md5: md5.digest('base64') };
}

function uploadFor(uploads: Map<string, Upload>, uploadId: string | null, record: OciRequest): Upload {
  const upload = uploadId ? uploads.get(uploadId) : undefined;
  if (!upload || upload.bucket !== record.bucket || upload.object !== record.object) {
    throw new Answer(
      404,
      'NoSuchUpload',
      `The upload ID '${uploadId ?? ''}' does not exist for object '${record.object ?? ''}'`,
    );
  }
  return upload;
}

function checkPreconditions(req: IncomingMessage, etag: string | undefined): void {
  const ifMatch = req.headers['if-match'];
  const ifNoneMatch = req.headers['if-none-match'];
  if (ifMatch !== undefined && ifMatch !== etag)
    throw new Answer(412, 'IfMatchFailed', 'The If-Match header does not match the current ETag');
  if (ifNoneMatch === '*' && etag !== undefined)
    throw new Answer(412, 'IfNoneMatchFailed', 'The resource already exists');
}

function validateLifecycle(value: unknown): LifecycleRule[] {
  const items = (value as { items?: unknown } | undefined)?.items ?? [];
  if (!Array.isArray(items)) throw new Answer(400, 'InvalidParameter', 'items must be a list');
  const names = new Set<string>();
  return items.map((raw: unknown, i) => {
    const r = raw as Partial<LifecycleRule>;
    const bad = (why: string): never => {
      throw new Answer(400, 'InvalidParameter', `items[${i}]: ${why}`);
    };
    if (typeof r.name !== 'string' || r.name === '') bad('name is required');
    if (names.has(r.name as string)) bad(`duplicate rule name ${r.name as string}`);
    names.add(r.name as string);
    if (typeof r.action !== 'string' || !LIFECYCLE_ACTIONS.has(r.action))
      bad('action must be ARCHIVE, INFREQUENT_ACCESS, DELETE or ABORT');
    if (typeof r.timeAmount !== 'number' || !Number.isInteger(r.timeAmount) || r.timeAmount < 1)
      bad('timeAmount must be a positive integer');
    if (r.timeUnit !== 'DAYS' && r.timeUnit !== 'YEARS') bad('timeUnit must be DAYS or YEARS');
    if (typeof r.isEnabled !== 'boolean') bad('isEnabled is required');
    const target = r.target ?? 'objects';
    if (!LIFECYCLE_TARGETS.has(target)) bad('unknown target');
    if (r.action === 'ABORT' && target !== 'multipart-uploads') bad('ABORT applies to multipart-uploads only');
    return { ...(r as LifecycleRule), target };
  });
}

function requireName(name: string | undefined): string {
  if (!name) throw new Answer(400, 'InvalidParameter', 'object name is required');
  return name;
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'opc-request-id': randomUUID(),
  });
  res.end(body);
}

function empty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'opc-request-id': randomUUID(),
    ...(status === 204 ? {} : { 'content-length': '0' }),
    ...headers,
  });
  res.end();
}

function fail(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const a =
    err instanceof Answer
      ? err
      : new Answer(500, 'InternalServerError', err instanceof Error ? err.message : String(err));
  json(res, a.status, { code: a.code, message: a.message });
}
