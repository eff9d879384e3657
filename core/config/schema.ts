/**
 * The one configuration schema. The YAML file, `ETCD_AUTOBACKUP_*` env vars, CLI flags and the
 * Helm chart's values all map onto this shape; defaults live here and nowhere else.
 */
import { z } from 'zod';
import { parseDuration } from '../duration.js';

/** A duration string (`5m`) or a number of milliseconds, parsed to milliseconds. */
const duration = (what: string) =>
  z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
    if (typeof v === 'number') return v;
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration like 30s, 5m or 24h for ${what} (got "${v}")` });
      return z.NEVER;
    }
    return ms;
  });

const etcdEndpoint = z
  .string()
  .refine((s) => /^https?:\/\/[^/\s]+(:\d+)?\/?$/.test(s), {
    message: 'expected an etcd client URL like https://10.0.0.1:2379 or http://127.0.0.1:2379',
  });

export const etcdSchema = z
  .object({
    /** Client URLs of the etcd members; the snapshot is taken from one healthy member. */
    endpoints: z.array(etcdEndpoint).min(1, 'give at least one etcd endpoint').default(['http://127.0.0.1:2379']),
    /** CA bundle that signed the etcd server certificates (kubeadm: /etc/kubernetes/pki/etcd/ca.crt). */
    cacert: z.string().min(1).optional(),
    /** Client certificate for etcd's client-cert auth (kubeadm: healthcheck-client.crt or server.crt). */
    cert: z.string().min(1).optional(),
    /** Private key of the client certificate. */
    key: z.string().min(1).optional(),
    /** Take snapshots from the leader instead of preferring a follower (followers spare the leader's disk and CPU). */
    preferLeader: z.boolean().default(false),
    /** How long to wait for a member to answer its status call before trying the next. */
    dialTimeout: duration('etcd.dialTimeout').default(5000),
    /** etcd user for etcd's own auth (rare on Kubernetes; client certs are usual). */
    username: z.string().min(1).optional(),
    /** Password of `username`. Secret: never logged. */
    password: z.string().min(1).optional(),
    /** Path to the etcdctl binary used by verify and restore. */
    etcdctl: z.string().min(1).default('etcdctl'),
  })
  .refine((e) => (e.cert === undefined) === (e.key === undefined), {
    message: 'cert and key go together: give both or neither',
    path: ['cert'],
  });

export const s3Schema = z.strictObject({
  /** Endpoint of an S3-compatible service (MinIO, Ceph, R2...); empty for AWS. */
  endpoint: z.string().url('expected a URL like https://minio.example:9000').optional(),
  /** Region; AWS needs it, most S3-compatible services accept any. */
  region: z.string().min(1).optional(),
  /** Path-style addressing (bucket in the path), which MinIO and most on-premise services need. */
  forcePathStyle: z.boolean().optional(),
  /** Access key id; when unset the usual AWS chain (env, profile, IRSA, instance role) is used. */
  accessKeyId: z.string().min(1).optional(),
  /** Secret access key. Secret: never logged. */
  secretAccessKey: z.string().min(1).optional(),
  /** Session token for temporary credentials. Secret: never logged. */
  sessionToken: z.string().min(1).optional(),
  /** PEM file with extra CA certificates to trust for the endpoint (self-signed MinIO, private CAs). */
  caFile: z.string().min(1).optional(),
  /** Multipart part size in MiB: memory used by an upload is about partSize x queueSize. */
  partSizeMiB: z.number().int().min(5).max(512).default(8),
  /** Parts uploaded in parallel. */
  queueSize: z.number().int().min(1).max(16).default(2),
});

const storeUrl = z.string().refine((s) => /^(file|s3|ncp|oci):\/\//.test(s) || !s.includes('://'), {
  message: 'expected a store URL like file:///var/backups/etcd, s3://bucket/prefix, ncp://bucket/prefix?region=kr',
});

export const storeSchema = z.strictObject({
  /** Where snapshots go: file:///dir, s3://bucket/prefix, ncp://bucket/prefix?region=kr. A bare path means file. */
  url: storeUrl.default('file://./backups'),
  s3: s3Schema.default(s3Schema.parse({})),
});

export const snapshotSchema = z.strictObject({
  /** Compression of the stored object; gzip costs CPU and usually shrinks etcd databases 3-10x. */
  compression: z.enum(['gzip', 'none']).default('gzip'),
  /** gzip level 1 (fast) to 9 (small). */
  compressionLevel: z.number().int().min(1).max(9).default(6),
  /** Give up on a snapshot that has not finished in this time. */
  timeout: duration('snapshot.timeout').default(30 * 60_000),
});

export const logSchema = z.strictObject({
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  /** json for machines; pretty for a terminal. */
  format: z.enum(['json', 'pretty']).default('json'),
});

export const redisSchema = z.strictObject({
  /** Redis URL: redis://host:6379/0 or rediss:// for TLS. A password in the URL is treated as a secret. */
  url: z.string().regex(/^rediss?:\/\//, 'expected a Redis URL like redis://127.0.0.1:6379').default('redis://127.0.0.1:6379'),
  /** Password, when not in the URL. Secret: never logged. */
  password: z.string().min(1).optional(),
  /** Sentinel addresses (host:port); when set, `url`'s host is ignored and `sentinelName` names the master. */
  sentinels: z.array(z.string().regex(/^[^:\s]+:\d+$/, 'expected host:port')).default([]),
  /** Name of the master set watched by the sentinels. */
  sentinelName: z.string().min(1).default('mymaster'),
  /** Prefix of every key the queue writes, so several installations can share a Redis. */
  prefix: z.string().min(1).default('etcd-autobackup'),
});

export const queueSchema = z.strictObject({
  /** Changes within one window lead to one snapshot, taken at the window's end. */
  debounceWindow: duration('queue.debounceWindow').default(5 * 60_000),
  /** A snapshot at least this often even when nothing changes. 0 turns the schedule off. */
  maxInterval: duration('queue.maxInterval').default(24 * 3_600_000),
  /** Attempts of a failed snapshot job before it is kept as failed. */
  attempts: z.number().int().min(1).max(100).default(5),
  /** First retry delay; doubles on each attempt. */
  backoff: duration('queue.backoff').default(30_000),
  /** Completed and failed jobs kept for the dashboard. */
  keepJobs: z.number().int().min(1).default(200),
});

export const webhookSchema = z.strictObject({
  /** host:port the HTTP server listens on. */
  listen: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]*):\d{1,5}$/, 'expected host:port like 0.0.0.0:8443').default('127.0.0.1:8080'),
  /** Largest audit EventList body accepted, in bytes. */
  auditBodyLimit: z.number().int().min(1024).default(10 * 1024 * 1024),
  /** Largest AdmissionReview body accepted, in bytes. */
  admissionBodyLimit: z.number().int().min(1024).default(3 * 1024 * 1024),
});

export const filtersSchema = z.strictObject({
  /** Verbs that write. */
  verbs: z.array(z.string().min(1)).default(['create', 'update', 'patch', 'delete', 'deletecollection']),
  /** Resources that change too often to be worth a snapshot, as `group/resource` (core group: just `resource`). */
  ignoreResources: z.array(z.string().min(1)).default(['coordination.k8s.io/leases', 'events', 'events.k8s.io/events']),
  /** Subresources that write nothing to etcd. */
  ignoreSubresources: z.array(z.string().min(1)).default(['exec', 'attach', 'portforward', 'proxy', 'log']),
  /** Users whose writes never trigger (e.g. a controller that rewrites status constantly). */
  ignoreUsers: z.array(z.string().min(1)).default([]),
});

export const watchSchema = z.strictObject({
  /** Watch etcd itself for changes (needs etcd access from the webhook role). */
  enabled: z.boolean().default(false),
  /** Key prefix of the Kubernetes objects. */
  prefix: z.string().min(1).default('/registry/'),
  /** Key prefixes that never trigger. */
  ignorePrefixes: z.array(z.string().min(1)).default(['/registry/leases/', '/registry/events/', '/registry/masterleases/']),
});

export const dashboardSchema = z.strictObject({
  /** Basic-auth user of /queues; the dashboard is off unless both user and password are set. */
  user: z.string().min(1).optional(),
  /** Basic-auth password of /queues. Secret: never logged. */
  password: z.string().min(1).optional(),
});

export const configSchema = z.strictObject({
  /** Name of the cluster; snapshots are stored under this prefix so clusters can share a bucket. */
  cluster: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, 'expected a lowercase DNS-style name like prod-eu-1')
    .default('default'),
  etcd: etcdSchema.default(etcdSchema.parse({})),
  store: storeSchema.default(storeSchema.parse({})),
  snapshot: snapshotSchema.default(snapshotSchema.parse({})),
  log: logSchema.default(logSchema.parse({})),
  redis: redisSchema.default(redisSchema.parse({})),
  queue: queueSchema.default(queueSchema.parse({})),
  webhook: webhookSchema.default(webhookSchema.parse({})),
  filters: filtersSchema.default(filtersSchema.parse({})),
  watch: watchSchema.default(watchSchema.parse({})),
  dashboard: dashboardSchema.default(dashboardSchema.parse({})),
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type EtcdConfig = Config['etcd'];
export type S3Config = Config['store']['s3'];
