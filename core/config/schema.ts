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
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type EtcdConfig = Config['etcd'];
export type S3Config = Config['store']['s3'];
