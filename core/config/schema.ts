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
  .strictObject({
    endpoints: z.array(etcdEndpoint).min(1, 'give at least one etcd endpoint').default(['http://127.0.0.1:2379']).describe('Client URLs of the etcd members; the snapshot is taken from one healthy member.'),
    cacert: z.string().min(1).optional().describe('CA bundle that signed the etcd server certificates (kubeadm: /etc/kubernetes/pki/etcd/ca.crt).'),
    cert: z.string().min(1).optional().describe('Client certificate for etcd\'s client-cert auth (kubeadm: healthcheck-client.crt or server.crt).'),
    key: z.string().min(1).optional().describe('Private key of the client certificate.'),
    preferLeader: z.boolean().default(false).describe('Take snapshots from the leader instead of preferring a follower (followers spare the leader\'s disk and CPU).'),
    dialTimeout: duration('etcd.dialTimeout').prefault('5s').describe('How long to wait for a member to answer its status call before trying the next.'),
    username: z.string().min(1).optional().describe('etcd user for etcd\'s own auth (rare on Kubernetes; client certs are usual).'),
    password: z.string().min(1).optional().describe('Password of `username`. Secret: never logged.'),
    etcdctl: z.string().min(1).default('etcdctl').describe('Path to the etcdctl binary used by verify and restore.'),
  })
  .refine((e) => (e.cert === undefined) === (e.key === undefined), {
    message: 'cert and key go together: give both or neither',
    path: ['cert'],
  });

export const s3Schema = z.strictObject({
  endpoint: z.string().url('expected a URL like https://minio.example:9000').optional().describe('Endpoint of an S3-compatible service (MinIO, Ceph, R2...); empty for AWS.'),
  region: z.string().min(1).optional().describe('Region; AWS needs it, most S3-compatible services accept any.'),
  forcePathStyle: z.boolean().optional().describe('Path-style addressing (bucket in the path), which MinIO and most on-premise services need.'),
  accessKeyId: z.string().min(1).optional().describe('Access key id; when unset the usual AWS chain (env, profile, IRSA, instance role) is used.'),
  secretAccessKey: z.string().min(1).optional().describe('Secret access key. Secret: never logged.'),
  sessionToken: z.string().min(1).optional().describe('Session token for temporary credentials. Secret: never logged.'),
  caFile: z.string().min(1).optional().describe('PEM file with extra CA certificates to trust for the endpoint (self-signed MinIO, private CAs).'),
  partSizeMiB: z.number().int().min(5).max(512).default(8).describe('Multipart part size in MiB: memory used by an upload is about partSize x queueSize.'),
  queueSize: z.number().int().min(1).max(16).default(2).describe('Parts uploaded in parallel.'),
});

const storeUrl = z.string().refine((s) => /^(file|s3|ncp|oci):\/\//.test(s) || !s.includes('://'), {
  message: 'expected a store URL like file:///var/backups/etcd, s3://bucket/prefix, ncp://bucket/prefix?region=kr',
});

export const storeSchema = z.strictObject({
  url: storeUrl.default('file://./backups').describe('Where snapshots go: file:///dir, s3://bucket/prefix, ncp://bucket/prefix?region=kr. A bare path means file.'),
  s3: s3Schema.default(s3Schema.parse({})),
});

export const snapshotSchema = z.strictObject({
  compression: z.enum(['gzip', 'none']).default('gzip').describe('Compression of the stored object; gzip costs CPU and usually shrinks etcd databases 3-10x.'),
  compressionLevel: z.number().int().min(1).max(9).default(6).describe('gzip level 1 (fast) to 9 (small).'),
  timeout: duration('snapshot.timeout').prefault('30m').describe('Give up on a snapshot that has not finished in this time.'),
});

export const logSchema = z.strictObject({
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  format: z.enum(['auto', 'json', 'pretty']).default('auto').describe('json for machines, pretty for people; auto is pretty when stderr is a terminal and json otherwise (containers).'),
});

export const redisSchema = z.strictObject({
  url: z.string().regex(/^rediss?:\/\//, 'expected a Redis URL like redis://127.0.0.1:6379').default('redis://127.0.0.1:6379').describe('Redis URL: redis://host:6379/0 or rediss:// for TLS. A password in the URL is treated as a secret.'),
  password: z.string().min(1).optional().describe('Password, when not in the URL. Secret: never logged.'),
  sentinels: z.array(z.string().regex(/^[^:\s]+:\d+$/, 'expected host:port')).default([]).describe('Sentinel addresses (host:port); when set, `url`\'s host is ignored and `sentinelName` names the master.'),
  sentinelName: z.string().min(1).default('mymaster').describe('Name of the master set watched by the sentinels.'),
  prefix: z.string().min(1).default('etcd-autobackup').describe('Prefix of every key the queue writes, so several installations can share a Redis.'),
});

export const queueSchema = z.strictObject({
  debounceWindow: duration('queue.debounceWindow').prefault('5m').describe('Changes within one window lead to one snapshot, taken at the window\'s end.'),
  maxInterval: duration('queue.maxInterval').prefault('24h').describe('A snapshot at least this often even when nothing changes. 0 turns the schedule off.'),
  attempts: z.number().int().min(1).max(100).default(5).describe('Attempts of a failed snapshot job before it is kept as failed.'),
  backoff: duration('queue.backoff').prefault('30s').describe('First retry delay; doubles on each attempt.'),
  keepJobs: z.number().int().min(1).default(200).describe('Completed and failed jobs kept for the dashboard.'),
});

export const webhookSchema = z.strictObject({
  listen: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]*):\d{1,5}$/, 'expected host:port like 0.0.0.0:8443').default('127.0.0.1:8080').describe('host:port the HTTP server listens on.'),
  auditBodyLimit: z.number().int().min(1024).default(10 * 1024 * 1024).describe('Largest audit EventList body accepted, in bytes.'),
  admissionBodyLimit: z.number().int().min(1024).default(3 * 1024 * 1024).describe('Largest AdmissionReview body accepted, in bytes.'),
});

export const filtersSchema = z.strictObject({
  verbs: z.array(z.string().min(1)).default(['create', 'update', 'patch', 'delete', 'deletecollection']).describe('Verbs that write.'),
  ignoreResources: z.array(z.string().min(1)).default(['coordination.k8s.io/leases', 'events', 'events.k8s.io/events']).describe('Resources that change too often to be worth a snapshot, as `group/resource` (core group: just `resource`).'),
  ignoreSubresources: z.array(z.string().min(1)).default(['exec', 'attach', 'portforward', 'proxy', 'log']).describe('Subresources that write nothing to etcd.'),
  ignoreUsers: z.array(z.string().min(1)).default([]).describe('Users whose writes never trigger (e.g. a controller that rewrites status constantly).'),
});

export const watchSchema = z.strictObject({
  enabled: z.boolean().default(false).describe('Watch etcd itself for changes (needs etcd access from the webhook role).'),
  prefix: z.string().min(1).default('/registry/').describe('Key prefix of the Kubernetes objects.'),
  ignorePrefixes: z.array(z.string().min(1)).default(['/registry/leases/', '/registry/events/', '/registry/masterleases/']).describe('Key prefixes that never trigger.'),
});

export const dashboardSchema = z.strictObject({
  user: z.string().min(1).optional().describe('Basic-auth user of /queues; the dashboard is off unless both user and password are set.'),
  password: z.string().min(1).optional().describe('Basic-auth password of /queues. Secret: never logged.'),
});

export const configSchema = z.strictObject({
  cluster: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, 'expected a lowercase DNS-style name like prod-eu-1')
    .default('default').describe('Name of the cluster; snapshots are stored under this prefix so clusters can share a bucket.'),
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
