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

const etcdEndpoint = z.string().refine((s) => /^https?:\/\/[^/\s]+(:\d+)?\/?$/.test(s), {
  message: 'expected an etcd client URL like https://10.0.0.1:2379 or http://127.0.0.1:2379',
});

export const etcdSchema = z
  .strictObject({
    endpoints: z
      .array(etcdEndpoint)
      .min(1, 'give at least one etcd endpoint')
      .default(['http://127.0.0.1:2379'])
      .describe('Client URLs of the etcd members; the snapshot is taken from one healthy member.'),
    cacert: z
      .string()
      .min(1)
      .optional()
      .describe('CA bundle that signed the etcd server certificates (kubeadm: /etc/kubernetes/pki/etcd/ca.crt).'),
    cert: z
      .string()
      .min(1)
      .optional()
      .describe("Client certificate for etcd's client-cert auth (kubeadm: healthcheck-client.crt or server.crt)."),
    key: z.string().min(1).optional().describe('Private key of the client certificate.'),
    preferLeader: z
      .boolean()
      .default(false)
      .describe(
        "Take snapshots from the leader instead of preferring a follower (followers spare the leader's disk and CPU).",
      ),
    dialTimeout: duration('etcd.dialTimeout')
      .prefault('5s')
      .describe(
        "How long to wait for a member to answer (a snapshot's status call, the watch's reads and watch requests), all of the client's retries included, before trying the next or again.",
      ),
    username: z
      .string()
      .min(1)
      .optional()
      .describe("etcd user for etcd's own auth (rare on Kubernetes; client certs are usual)."),
    password: z.string().min(1).optional().describe('Password of `username`. Secret: never logged.'),
    etcdctl: z.string().min(1).default('etcdctl').describe('Path to the etcdctl binary used by verify and restore.'),
  })
  .refine((e) => (e.cert === undefined) === (e.key === undefined), {
    message: 'cert and key go together: give both or neither',
    path: ['cert'],
  });

export const s3Schema = z.strictObject({
  endpoint: z
    .string()
    .url('expected a URL like https://minio.example:9000')
    .optional()
    .describe('Endpoint of an S3-compatible service (MinIO, Ceph, R2...); empty for AWS.'),
  region: z.string().min(1).optional().describe('Region; AWS needs it, most S3-compatible services accept any.'),
  forcePathStyle: z
    .boolean()
    .optional()
    .describe('Path-style addressing (bucket in the path), which MinIO and most on-premise services need.'),
  accessKeyId: z
    .string()
    .min(1)
    .optional()
    .describe('Access key id; when unset the usual AWS chain (env, profile, IRSA, instance role) is used.'),
  secretAccessKey: z.string().min(1).optional().describe('Secret access key. Secret: never logged.'),
  sessionToken: z.string().min(1).optional().describe('Session token for temporary credentials. Secret: never logged.'),
  caFile: z
    .string()
    .min(1)
    .optional()
    .describe('PEM file with extra CA certificates to trust for the endpoint (self-signed MinIO, private CAs).'),
  partSizeMiB: z
    .number()
    .int()
    .min(5)
    .max(512)
    .default(8)
    .describe('Multipart part size in MiB: memory used by an upload is about partSize x queueSize.'),
  queueSize: z.number().int().min(1).max(16).default(2).describe('Parts uploaded in parallel.'),
});

export const ociSchema = z.strictObject({
  region: z
    .string()
    .regex(/^[a-z0-9-]+$/, 'expected an OCI region id like us-ashburn-1')
    .optional()
    .describe(
      "Region id (us-ashburn-1, eu-frankfurt-1...); overrides the config file's region. The store URL's ?region= may give it too.",
    ),
  tenancy: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Tenancy OCID for API-key auth. With tenancy, user, fingerprint and privateKeyFile set, no OCI config file is read.',
    ),
  user: z.string().min(1).optional().describe('User OCID the API key belongs to.'),
  fingerprint: z
    .string()
    .regex(/^([0-9a-fA-F]{2}:){15}[0-9a-fA-F]{2}$/, 'expected an API key fingerprint like 12:34:...:ef (16 hex pairs)')
    .optional()
    .describe('Fingerprint of the API key, as the console shows it.'),
  privateKeyFile: z
    .string()
    .min(1)
    .optional()
    .describe("PEM file with the API key's private key (e.g. a mounted Kubernetes Secret)."),
  passphrase: z.string().min(1).optional().describe('Passphrase of an encrypted private key. Secret: never logged.'),
  configFile: z
    .string()
    .min(1)
    .optional()
    .describe(
      'OCI config file as the oci CLI writes it (default ~/.oci/config), used when the API-key fields above are not set.',
    ),
  profile: z.string().min(1).default('DEFAULT').describe('Profile of the config file to use.'),
  endpoint: z
    .string()
    .url('expected a URL like https://objectstorage.us-ashburn-1.oraclecloud.com')
    .optional()
    .describe('Object Storage endpoint; empty derives it from the region.'),
  partSizeMiB: z
    .number()
    .int()
    .min(10)
    .max(512)
    .default(10)
    .describe('Multipart part size in MiB: memory used by an upload is about partSize x (queueSize + 1).'),
  queueSize: z.number().int().min(1).max(16).default(2).describe('Parts uploaded in parallel.'),
});

const storeUrl = z.string().refine((s) => /^(file|s3|ncp|oci):\/\//.test(s) || !s.includes('://'), {
  message: 'expected a store URL like file:///var/backups/etcd, s3://bucket/prefix, ncp://bucket/prefix?region=kr',
});

export const storeSchema = z.strictObject({
  url: storeUrl
    .default('file://./backups')
    .describe(
      'Where snapshots go: file:///dir, s3://bucket/prefix, ncp://bucket/prefix?region=kr, oci://namespace/bucket/prefix?region=us-ashburn-1. A bare path means file.',
    ),
  s3: s3Schema.default(s3Schema.parse({})),
  oci: ociSchema.default(ociSchema.parse({})),
  createBucket: z
    .boolean()
    .default(false)
    .describe(
      "Create the store's bucket at worker start when it does not exist (s3/ncp: in the store's region; oci: in the tenancy's root compartment). Off: a missing bucket is an error.",
    ),
});

/**
 * Codec names and their levels (worker/codecs.ts builds the codecs on these). zstd by default:
 * on etcd databases it stores less than gzip -6 in a fraction of the CPU time. gzip's default is 3,
 * ISA-L's best level: a quarter of zlib -6's CPU for ~6% more bytes (worker/codecs.ts).
 */
export const COMPRESSIONS = ['zstd', 'gzip', 'none'] as const;
export const COMPRESSION_LEVELS = {
  zstd: { min: 1, max: 19, default: 3 },
  gzip: { min: 1, max: 9, default: 3 },
  none: { min: 0, max: 0, default: 0 },
} as const;

export const snapshotSchema = z
  .strictObject({
    compression: z
      .enum(COMPRESSIONS)
      .default('zstd')
      .describe(
        'Compression of the stored object: zstd (.db.zst, multi-threaded, needs the zstd binary), gzip (.db.gz; levels 1-3 need the igzip binary, Debian isal) or none (.db).',
      ),
    compressionLevel: z
      .number()
      .int()
      .min(1)
      .max(19)
      .optional()
      .describe(
        "Compression level: zstd 1-19 (default 3), gzip 1-9 (default 3; 1-3 run ISA-L igzip, 4-9 zlib on several cores, 6 is gzip's own default); ignored for none.",
      ),
    timeout: duration('snapshot.timeout')
      .prefault('30m')
      .describe('Give up on a snapshot that has not finished in this time.'),
  })
  .superRefine((s, ctx) => {
    const range = COMPRESSION_LEVELS[s.compression];
    if (s.compressionLevel !== undefined && s.compression !== 'none' && s.compressionLevel > range.max) {
      ctx.addIssue({
        code: 'custom',
        path: ['compressionLevel'],
        message: `${s.compression} levels are ${range.min}-${range.max} (got ${s.compressionLevel})`,
      });
    }
  });

export const encryptionSchema = z
  .strictObject({
    keyFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        'File with the 256-bit key that encrypts new snapshots (32 raw bytes or 44 characters of base64, e.g. a mounted Kubernetes Secret); unset stores snapshots unencrypted. Read at each snapshot, so a rotated Secret takes effect without a restart. See docs/encryption.md.',
      ),
    decryptionKeyFiles: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'Further key files that only decrypt (verify, restore): the old keys after a rotation. The keyFile key decrypts too.',
      ),
    recipients: z
      .array(
        z
          .string()
          .regex(
            /^age1[02-9ac-hj-np-z]{58}$/,
            'expected an age X25519 recipient: age1 followed by 58 characters, as age-keygen -y prints',
          ),
      )
      .default([])
      .describe(
        'age X25519 recipients (age1...) that new snapshots are encrypted to, as standard age files (.age after the compression suffix). Public keys: the cluster cannot read its own backups. Cannot be combined with keyFile. See docs/encryption.md.',
      ),
    recipientsFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        'File of age recipients, one per line as age -R reads it (# comments and blank lines allowed), e.g. a mounted Secret or ConfigMap; added to recipients. Read at each snapshot.',
      ),
    identityFiles: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'age identity files (age-keygen output) that decrypt age snapshots for verify and restore (--identity). Secret: keep them off the cluster; only the file names are ever logged.',
      ),
  })
  .refine((e) => e.keyFile === undefined || (e.recipients.length === 0 && e.recipientsFile === undefined), {
    message:
      'encryption.keyFile (AES-GCM) and encryption.recipients / encryption.recipientsFile (age) cannot both be set for writing; to move to age, drop keyFile and keep the old key in decryptionKeyFiles (docs/encryption.md)',
    path: ['keyFile'],
  });

export const logSchema = z.strictObject({
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  format: z
    .enum(['auto', 'json', 'pretty'])
    .default('auto')
    .describe(
      'json for machines, pretty for people; auto is pretty when stderr is a terminal and json otherwise (containers).',
    ),
});

export const redisSchema = z.strictObject({
  url: z
    .string()
    .regex(/^rediss?:\/\//, 'expected a Redis URL like redis://127.0.0.1:6379')
    .default('redis://127.0.0.1:6379')
    .describe('Redis URL: redis://host:6379/0 or rediss:// for TLS. A password in the URL is treated as a secret.'),
  password: z.string().min(1).optional().describe('Password, when not in the URL. Secret: never logged.'),
  sentinels: z
    .array(z.string().regex(/^[^:\s]+:\d+$/, 'expected host:port'))
    .default([])
    .describe("Sentinel addresses (host:port); when set, `url`'s host is ignored and `sentinelName` names the master."),
  sentinelName: z.string().min(1).default('mymaster').describe('Name of the master set watched by the sentinels.'),
  prefix: z
    .string()
    .min(1)
    .default('etcd-autobackup')
    .describe('Prefix of every key the queue writes, so several installations can share a Redis.'),
});

export const queueSchema = z.strictObject({
  debounceWindow: duration('queue.debounceWindow')
    // Windows are floor(now / debounceWindow): 0 has no windows, and every change would be dropped.
    .refine((ms) => ms > 0, { message: 'expected a positive duration like 30s or 5m (0 has no windows)' })
    .prefault('5m')
    .describe("Changes within one window lead to one snapshot, taken at the window's end."),
  maxInterval: duration('queue.maxInterval')
    .prefault('24h')
    .describe('A snapshot at least this often even when nothing changes. 0 turns the schedule off.'),
  attempts: z
    .number()
    .int()
    .min(0)
    .max(100)
    .default(0)
    .describe(
      'Attempts of a failed snapshot job before it is kept as failed. 0 (the default): retry until a snapshot covers its changes, never giving up.',
    ),
  backoff: duration('queue.backoff')
    .prefault('30s')
    .describe('First retry delay; doubles on each attempt up to queue.backoffMax.'),
  backoffMax: duration('queue.backoffMax')
    .prefault('10m')
    .describe('Longest delay between two attempts of a failed snapshot job.'),
  keepJobs: z.number().int().min(1).default(200).describe('Completed and failed jobs kept for the dashboard.'),
  lockDuration: duration('queue.lockDuration')
    .prefault('60s')
    .describe(
      "How long a worker holds a snapshot job (renewed while it runs): a crashed worker's job is retried by another worker after about this long.",
    ),
  enqueueTimeout: duration('queue.enqueueTimeout')
    .prefault('30s')
    .describe(
      '`snapshot --enqueue`: how long to wait for Redis to take the job before giving up with an error (Redis down, wrong password).',
    ),
  shutdownGrace: duration('queue.shutdownGrace')
    .prefault('25s')
    .describe(
      "On SIGTERM, how long the running snapshot may go on before it is abandoned (nothing is published) and left for another worker. Keep below the pod's terminationGracePeriodSeconds.",
    ),
});

export const webhookTlsSchema = z
  .strictObject({
    certFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        'PEM serving certificate (chain) for HTTPS; re-read when it changes, e.g. a renewed Secret volume. Unset (and certs.manage off): plain HTTP.',
      ),
    keyFile: z.string().min(1).optional().describe('PEM private key of `certFile`.'),
  })
  .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), {
    message: 'certFile and keyFile go together: give both or neither',
    path: ['certFile'],
  });

export const webhookSchema = z
  .strictObject({
    tls: webhookTlsSchema
      .default(webhookTlsSchema.parse({}))
      .describe('HTTPS serving from certificate files (the apiserver calls webhooks over HTTPS only).'),
    listen: z
      .string()
      .regex(
        /^(\[[0-9a-fA-F:.]+\]|[0-9a-fA-F]*:[0-9a-fA-F:.]*|[^:\s]*):\d{1,5}$/,
        'expected host:port like 0.0.0.0:8443 or [fd00::1]:8443',
      )
      .default('127.0.0.1:8080')
      .describe(
        'host:port the HTTP server listens on. The port follows the last colon, so an IPv6 address may also come without brackets (fd00::1:8443), as `$(POD_IP):8443` expands to in a pod spec.',
      ),
    auditBodyLimit: z
      .number()
      .int()
      .min(1024)
      .default(10 * 1024 * 1024)
      .describe('Largest audit EventList body accepted, in bytes.'),
    admissionBodyLimit: z
      .number()
      .int()
      .min(1024)
      .default(3 * 1024 * 1024)
      .describe("Largest AdmissionReview body accepted, in bytes; the apiserver's own request limit is 3 MiB."),
    auditMaxEvents: z
      .number()
      .int()
      .min(1)
      .default(1000)
      .describe(
        "Most events in one audit EventList; a bigger batch gets 413 before it is parsed. The apiserver's --audit-webhook-batch-max-size is 400 by default.",
      ),
    maxJsonDepth: z
      .number()
      .int()
      .min(8)
      .max(10_000)
      .default(512)
      .describe(
        'Deepest nesting of JSON objects and arrays accepted in an audit or admission body; deeper bodies get 400 before they are parsed.',
      ),
    auditConcurrency: z
      .number()
      .int()
      .min(1)
      .default(8)
      .describe(
        'Audit batches read and handled at once (each up to webhook.auditBodyLimit in memory); more get 429 with Retry-After (the apiserver retries with backoff), so an audit flood cannot slow admission answers or grow memory without bound. 8 leaves room for several apiservers sending batches in parallel.',
      ),
    auditDecodeThreads: z
      .number()
      .int()
      .min(0)
      .default(2)
      .describe(
        'Worker threads that parse and filter audit batches, so that a flood of audit events uses more than one core and a large batch never delays admission answers on the event loop. 0 decodes on the event loop. A thread that dies fails only its in-flight batches (500; the apiserver retries) and is replaced: at once, then after 1s, 2s, ... up to 60s while replacements keep dying before they answer a batch; batches are decoded on the event loop while no thread has loaded.',
      ),
    admissionConcurrency: z
      .number()
      .int()
      .min(1)
      .default(64)
      .describe('AdmissionReviews read and handled at once; more get 429 with Retry-After.'),
    headersTimeout: duration('webhook.headersTimeout')
      .prefault('10s')
      .describe('Time a client has to send the request headers before the connection is closed.'),
    requestTimeout: duration('webhook.requestTimeout')
      .prefault('30s')
      .describe(
        "Time a client has to send a whole request, body included (the apiserver's admission timeout is at most 30s); slow senders are cut off. 0 turns it off.",
      ),
    keepAliveTimeout: duration('webhook.keepAliveTimeout')
      .prefault('65s')
      .describe(
        "How long an idle connection stays open for the next request; longer than the apiserver's idle timeout.",
      ),
    maxConnections: z
      .number()
      .int()
      .min(1)
      .default(512)
      .describe('Open connections accepted at once; further connections are closed at once.'),
  })
  .refine((w) => w.requestTimeout === 0 || w.headersTimeout <= w.requestTimeout, {
    message: 'headersTimeout must not be longer than requestTimeout',
    path: ['headersTimeout'],
  });

export const filtersSchema = z.strictObject({
  verbs: z
    .array(z.string().min(1))
    .default(['create', 'update', 'patch', 'delete', 'deletecollection'])
    .describe('Verbs that write.'),
  ignoreResources: z
    .array(z.string().min(1))
    .default(['coordination.k8s.io/leases', 'events', 'events.k8s.io/events'])
    .describe(
      'Resources that change too often to be worth a snapshot, as `group/resource` (core group: just `resource`).',
    ),
  ignoreSubresources: z
    .array(z.string().min(1))
    .default(['exec', 'attach', 'portforward', 'proxy', 'log'])
    .describe('Subresources that write nothing to etcd.'),
  ignoreUsers: z
    .array(z.string().min(1))
    .default([])
    .describe('Users whose writes never trigger (e.g. a controller that rewrites status constantly).'),
});

export const watchSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(false)
    .describe('Watch etcd itself for changes (needs etcd access from the webhook role).'),
  prefix: z.string().min(1).default('/registry/').describe('Key prefix of the Kubernetes objects.'),
  ignorePrefixes: z
    .array(z.string().min(1))
    .default(['/registry/leases/', '/registry/events/', '/registry/masterleases/'])
    .describe('Key prefixes that never trigger.'),
});

export const dashboardSchema = z.strictObject({
  user: z
    .string()
    .min(1)
    .optional()
    .describe('Basic-auth user of /queues; the dashboard is off unless both user and password are set.'),
  password: z.string().min(1).optional().describe('Basic-auth password of /queues. Secret: never logged.'),
});

export const retentionSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(true)
    .describe(
      'Delete old snapshots of this cluster by the counts below; false keeps everything (and `prune` refuses to delete).',
    ),
  afterSnapshot: z
    .boolean()
    .default(true)
    .describe(
      'Prune after each successful snapshot; false leaves pruning to `etcd-autobackup prune` (e.g. a CronJob).',
    ),
  keepLast: z
    .number()
    .int()
    .min(1)
    .default(10)
    .describe('Keep the newest N snapshots. The newest verified snapshot is always kept, whatever the counts.'),
  hourly: z
    .number()
    .int()
    .min(0)
    .default(24)
    .describe('Also keep the newest snapshot of each of the last N hours that have one (UTC).'),
  daily: z
    .number()
    .int()
    .min(0)
    .default(7)
    .describe('Also keep the newest snapshot of each of the last N days that have one (UTC).'),
  weekly: z
    .number()
    .int()
    .min(0)
    .default(4)
    .describe('Also keep the newest snapshot of each of the last N ISO weeks that have one (UTC, Monday first).'),
  monthly: z
    .number()
    .int()
    .min(0)
    .default(6)
    .describe('Also keep the newest snapshot of each of the last N months that have one (UTC).'),
  orphanAge: duration('retention.orphanAge')
    .prefault('24h')
    .describe(
      'Objects of our naming without a manifest (and manifests without an object, and stale upload temp files) older than this, and older than snapshot.timeout, are deleted as orphans.',
    ),
});

export const lifecycleSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(false)
      .describe(
        "Put a bucket lifecycle rule on the cluster's snapshot prefix (s3 on AWS, oci): at each worker start, and with `etcd-autobackup lifecycle apply`. A missing permission at start is a logged warning.",
      ),
    transitionDays: z
      .number()
      .int()
      .min(0)
      .default(60)
      .describe(
        'Move snapshot objects to the archive storage class after this many days (manifests stay readable); 0 never moves them.',
      ),
    expireDays: z
      .number()
      .int()
      .min(0)
      .default(180)
      .describe(
        'Let the provider delete snapshots after this many days; 0 never expires them. Expiry ignores retention: see docs/retention.md.',
      ),
    storageClass: z
      .string()
      .regex(/^[A-Za-z_]+$/, 'expected a storage class name like GLACIER, DEEP_ARCHIVE or Archive')
      .optional()
      .describe(
        'Archive class: s3 GLACIER (default), GLACIER_IR, DEEP_ARCHIVE, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING; oci Archive (default) or InfrequentAccess.',
      ),
  })
  .refine((l) => l.transitionDays === 0 || l.expireDays === 0 || l.expireDays > l.transitionDays, {
    message: 'expireDays must be greater than transitionDays (or 0 for no expiry)',
    path: ['expireDays'],
  });

const dnsLabel = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/,
    'expected a Kubernetes object name (lowercase letters, digits, - and .)',
  );

export const certsSchema = z
  .strictObject({
    manage: z
      .boolean()
      .default(false)
      .describe(
        "Generate the webhook's CA and serving certificate, keep them in a Secret shared by the replicas, renew them, and keep the caBundle of `webhookConfigName` current.",
      ),
    secretName: dnsLabel
      .default('etcd-autobackup-webhook-tls')
      .describe('Secret holding ca.crt, ca.key, tls.crt and tls.key.'),
    serviceName: dnsLabel
      .default('etcd-autobackup-webhook')
      .describe('Service of the webhook; the certificate covers svc, svc.ns, svc.ns.svc and svc.ns.svc.cluster.local.'),
    namespace: dnsLabel.optional().describe("Namespace of the Secret and Service; default: the pod's own namespace."),
    webhookConfigName: dnsLabel
      .optional()
      .describe('ValidatingWebhookConfiguration whose caBundle is patched to the CA; unset: none is patched.'),
    validityDays: z
      .number()
      .int()
      .min(1)
      .max(3650)
      .default(365)
      .describe('Lifetime of the serving certificate, in days.'),
    caValidityDays: z.number().int().min(1).max(36500).default(3650).describe('Lifetime of the CA, in days.'),
    renewBefore: duration('certs.renewBefore')
      .prefault('30d')
      .describe('Renew a certificate this long before it expires.'),
    checkInterval: duration('certs.checkInterval')
      .prefault('1h')
      .describe('How often each replica re-reads the Secret (and renews when due).'),
  })
  .refine((c) => c.renewBefore < c.validityDays * 86_400_000, {
    message: 'renewBefore must be shorter than validityDays, or the certificate is renewed on every check',
    path: ['renewBefore'],
  });

export const auditAuthSchema = z.strictObject({
  clientCaFile: z
    .string()
    .min(1)
    .optional()
    .describe(
      "PEM CA(s) that signed the apiserver's audit client certificate; with it, /audit needs a client certificate it signed (HTTPS only).",
    ),
  tokenFile: z
    .string()
    .min(1)
    .optional()
    .describe(
      'File holding the bearer token the apiserver sends to /audit. With neither this nor clientCaFile, /audit is open.',
    ),
});

export const admissionAuthSchema = z.strictObject({
  clientCaFile: z
    .string()
    .min(1)
    .optional()
    .describe(
      'PEM CA(s) that signed the client certificate the apiserver presents to admission webhooks (the kubeconfig of its AdmissionConfiguration); with it, /admission needs a client certificate it signed (HTTPS only).',
    ),
  tokenFile: z
    .string()
    .min(1)
    .optional()
    .describe(
      'File holding the bearer token the apiserver sends to /admission (AdmissionConfiguration kubeconfig). With neither this nor clientCaFile, /admission is open, as the apiserver sends no credentials unless configured to.',
    ),
});

// --- metrics protection (docs/network-policy.md)
export const metricsAuthSchema = z.strictObject({
  tokenFile: z
    .string()
    .min(1)
    .optional()
    .describe(
      'File holding a bearer token that GET /metrics requires (webhook and worker); other requests get 401. Unset: /metrics is open.',
    ),
});
// --- end metrics protection

const toleration = z.strictObject({
  key: z.string().min(1).optional(),
  operator: z.enum(['Exists', 'Equal']).optional(),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.number().int().optional(),
});

export const executorSchema = z
  .strictObject({
    mode: z
      .enum(['process', 'job'])
      .default('process')
      .describe(
        'process: the worker takes snapshots itself. job: the worker runs each snapshot as a Kubernetes Job on a control-plane node (for etcd reachable only from there).',
      ),
    namespace: dnsLabel.optional().describe("Namespace of the snapshot Jobs; default: the worker pod's own namespace."),
    image: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Image of the snapshot Jobs (this project's image, same version as the worker). Required for mode job.",
      ),
    imagePullPolicy: z
      .enum(['Always', 'IfNotPresent', 'Never'])
      .default('IfNotPresent')
      .describe("Pull policy of the Job's container."),
    imagePullSecrets: z
      .array(dnsLabel)
      .default([])
      .describe(
        'Secrets (names) the Job pods pull the image with, for a private registry; the chart sets its imagePullSecrets.',
      ),
    command: z
      .array(z.string().min(1))
      .optional()
      .describe(
        "Entrypoint of the Job's container when the image's own is not the etcd-autobackup command; `snapshot --json` is appended as args.",
      ),
    serviceAccountName: dnsLabel
      .optional()
      .describe('Service account of the Job pods (e.g. for IRSA / workload identity to reach the store).'),
    nodeSelector: z
      .record(z.string(), z.string())
      .default({ 'node-role.kubernetes.io/control-plane': '' })
      .describe('Node labels the Job pods must match.'),
    tolerations: z
      .array(toleration)
      .default([{ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' }])
      .describe('Tolerations of the Job pods.'),
    hostNetwork: z
      .boolean()
      .default(true)
      .describe("Run the Job pods in the node's network, where etcd listens on 127.0.0.1:2379."),
    etcdCertPath: z
      .string()
      .regex(/^\//, 'expected an absolute host path')
      .default('/etc/kubernetes/pki/etcd')
      .describe('Host directory with the etcd certificates, mounted read-only at the same path in the Job pods.'),
    runAsUser: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("User of the Job's container; kubeadm's etcd keys are readable by root only."),
    configMap: dnsLabel
      .optional()
      .describe(
        "ConfigMap with a config.yaml for the Job (mounted and passed with --config); the worker's snapshot settings are passed as env vars on top.",
      ),
    envFromSecret: dnsLabel
      .optional()
      .describe(
        'Secret whose keys become env vars of the Job (ETCD_AUTOBACKUP_S3_SECRET_ACCESS_KEY, ...): secrets are never copied into the Job spec.',
      ),
    resources: z
      .strictObject({
        requests: z.record(z.string(), z.string()).optional(),
        limits: z.record(z.string(), z.string()).optional(),
      })
      .default({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } })
      .describe(
        "Resources of the Job's container (a snapshot streams: its memory does not grow with the database). Replaces the default as a whole.",
      ),
    scratchSizeLimit: z
      .string()
      .regex(/^[0-9]+(\.[0-9]+)?([EPTGMK]i?)?$/, 'expected a Kubernetes quantity like 256Mi')
      .default('256Mi')
      .describe(
        "Size limit of the Job's /tmp (an emptyDir, the only writable place: the root filesystem is read-only). A snapshot writes no temporary file.",
      ),
    ttlSecondsAfterFinished: z
      .number()
      .int()
      .min(0)
      .default(3600)
      .describe('Kubernetes deletes a finished Job (and its pod) after this many seconds.'),
    startTimeout: duration('executor.startTimeout')
      .prefault('10m')
      .describe('Time allowed for scheduling and image pull, on top of snapshot.timeout, before the Job is failed.'),
    logTailLines: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(20)
      .describe('Lines of the pod log quoted when a Job fails.'),
  })
  .refine((e) => e.mode !== 'job' || e.image !== undefined, {
    message: 'executor.image is required when executor.mode is job (the etcd-autobackup image the Job runs)',
    path: ['image'],
  });

// --- drills (docs/drills.md)
export const drillSchema = z.strictObject({
  scratchDir: z
    .string()
    .min(1)
    .default('/var/tmp/etcd-autobackup-drills')
    .describe(
      'Where a drill downloads and restores the snapshot; needs room for twice the database plus drill.freeSpaceMargin. Removed after each drill.',
    ),
  freeSpaceMargin: z
    .number()
    .int()
    .nonnegative()
    .default(256 * 1024 * 1024)
    .describe(
      'Bytes that must stay free in drill.scratchDir beyond what the drill writes; a drill refuses to start otherwise.',
    ),
  etcd: z
    .string()
    .min(1)
    .default('etcd')
    .describe('The etcd binary a drill boots on the restored data (loopback only).'),
  startTimeout: duration('drill.startTimeout')
    .prefault('60s')
    .describe('How long the throwaway etcd may take to start answering before the drill fails.'),
  afterSnapshot: z
    .number()
    .int()
    .nonnegative()
    .default(0)
    .describe('Drill every Nth published snapshot right after it is taken; 0 turns this off.'),
  schedule: duration('drill.schedule')
    .prefault('0')
    .describe(
      "Drill the newest snapshot this often (e.g. 24h), once per tick for the cluster whatever the number of workers, one drill of the cluster at a time (under the cluster's snapshot lock; with drill.executor job, its drill lock); 0 turns this off.",
    ),
  executor: z
    .enum(['local', 'job'])
    .default('local')
    .describe(
      "local: the worker boots drill.etcd itself. job: each drill runs as a Kubernetes Job with the upstream etcd image of the snapshot's etcd version (drill.etcdImage) beside this image (executor.image); see docs/drills.md.",
    ),
  replayLog: z
    .boolean()
    .default(false)
    .describe(
      "Every drill (drill.afterSnapshot, drill.schedule, the drill command) also replays the delta log (delta.enabled) from an older snapshot to the drilled one's revision and compares HashKV and key counts (docs/drills.md). Local executor only; boots a second scratch etcd and needs room for a second database in drill.scratchDir.",
    ),
  etcdImage: z
    .string()
    .min(1)
    .refine((s) => s.includes('{version}'), 'expected an image reference containing {version}')
    .default('gcr.io/etcd-development/etcd:v{version}')
    .describe(
      "Image of etcd for drill Jobs; {version} becomes the snapshot's etcd version (e.g. 3.6.4). Point it at a mirror for air-gapped clusters.",
    ),
  job: z
    .strictObject({
      nodeSelector: z.record(z.string(), z.string()).default({}).describe('Node labels the drill Job pods must match.'),
      tolerations: z.array(toleration).default([]).describe('Tolerations of the drill Job pods.'),
      runAsUser: z
        .number()
        .int()
        .min(1)
        .default(65532)
        .describe('Non-root user (and fsGroup) of every container of the drill pod; it needs no host access.'),
      scratchSizeLimit: z
        .string()
        .regex(/^[0-9]+(\.[0-9]+)?([EPTGMK]i?)?$/, 'expected a Kubernetes quantity like 2Gi')
        .default('4Gi')
        .describe(
          "Size limit of the drill pod's scratch emptyDir: the snapshot file plus the restored data dir, about twice the etcd database.",
        ),
      resources: z
        .strictObject({
          requests: z.record(z.string(), z.string()).optional(),
          limits: z.record(z.string(), z.string()).optional(),
        })
        .default({ requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '2Gi' } })
        .describe(
          "Resources of each container of the drill pod; etcd maps the database, so its memory is about the database's size (docs/drills.md, Cost).",
        ),
      timeout: duration('drill.job.timeout')
        .prefault('30m')
        .describe(
          "The drill Job's whole run, image pulls included (its activeDeadlineSeconds); the worker waits this long plus a minute, then records a failed drill.",
        ),
      ttlSecondsAfterFinished: z
        .number()
        .int()
        .min(0)
        .default(3600)
        .describe('Kubernetes deletes a finished drill Job (and its pod) after this many seconds.'),
      secretMounts: z
        .array(
          z.strictObject({
            secretName: dnsLabel,
            mountPath: z
              .string()
              .regex(/^\/[^:]*$/, 'expected an absolute path')
              .refine(
                (p) => !['/', '/scratch', '/tmp', '/etc/etcd-autobackup'].includes(p.replace(/\/+$/, '') || '/'),
                {
                  message:
                    'expected a folder of its own: not /, /scratch, /tmp or /etc/etcd-autobackup (the pod uses them)',
                },
              ),
            items: z
              .array(z.strictObject({ key: z.string().min(1), path: z.string().min(1) }))
              .optional()
              .describe('Only these keys of the Secret, as these file names; default: every key under its own name.'),
            defaultMode: z
              .number()
              .int()
              .min(0)
              .max(0o777)
              .optional()
              .describe('File mode (decimal), e.g. 288 for 0440.'),
          }),
        )
        .default([])
        .describe(
          "Secrets mounted read-only into the drill pod's etcd-autobackup containers (prepare, check; never etcd's) at the worker's own paths, so that encryption.keyFile, decryptionKeyFiles and identityFiles (passed to the pod as they are) resolve there. The chart sets them from encryption.existingSecret and encryption.ageIdentitySecret.",
        ),
    })
    .prefault({})
    .describe('The drill Job (drill.executor: job). Image pull settings, namespace and our image come from executor.'),
});
// --- end drills

// --- delta log (docs/delta-log.md)
export const deltaSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(false)
    .describe(
      'Write every etcd change to the store within delta.flushInterval (the delta log), for point-in-time restore. One worker per cluster writes it (a Redis lock); another takes over when it stops.',
    ),
  flushInterval: duration('delta.flushInterval')
    .prefault('10s')
    .refine((ms) => ms >= 100, 'delta.flushInterval must be at least 100ms')
    .describe(
      'Most time a change waits in the writer before its segment is stored: the recovery point objective while the store keeps up.',
    ),
  maxSegmentBytes: z
    .number()
    .int()
    .min(64 * 1024)
    .max(256 * 1024 * 1024)
    .default(8 * 1024 * 1024)
    .describe(
      'A segment is stored early when its events reach this many bytes (before compression). Bounds the writer memory: about twice this while the store is slow.',
    ),
});
// --- end delta log

// --- events (docs/events.md)
export const eventsSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(false)
    .describe(
      'Create a Kubernetes Event about the worker Deployment for each published snapshot, failed snapshot attempt and drill.',
    ),
  deployment: z
    .string()
    .min(1)
    .optional()
    .describe('Name of the worker Deployment the Events are about (the chart sets it). Required when enabled.'),
  namespace: z
    .string()
    .min(1)
    .optional()
    .describe("Namespace of the Deployment and its Events; default: the worker pod's own namespace."),
  timeout: duration('events.timeout')
    .prefault('5s')
    .describe(
      'Longest time one Event create may take; a slower or failing API is logged and counted, never waited on.',
    ),
});
// --- end events

// --- notifications (docs/notifications.md)
const notifyWebhookSchema = z.strictObject({
  url: z
    .string()
    .url()
    .optional()
    .describe('Where notifications are POSTed (a secret: from the env var or the chart Secret, never logged).'),
  urlFile: z
    .string()
    .min(1)
    .optional()
    .describe('File holding the URL instead (e.g. a mounted Secret); read at each notification.'),
  format: z
    .enum(['json', 'slack'])
    .default('json')
    .describe('json: the documented etcd-autobackup body; slack: an incoming-webhook body ({"text": ...}).'),
  onSuccess: z
    .boolean()
    .default(false)
    .describe('Also notify published snapshots and passed drills (failures are always sent).'),
  attempts: z.number().int().min(1).max(20).default(4).describe('Tries per notification (network errors, 429, 5xx).'),
  backoff: duration('notify.webhook.backoff').prefault('1s').describe('Delay before the second try; doubles after.'),
  timeout: duration('notify.webhook.timeout').prefault('10s').describe('Longest time one try may take.'),
});
export const notifySchema = z.strictObject({
  webhook: notifyWebhookSchema.default(notifyWebhookSchema.parse({})),
});
// --- end notifications

export const configSchema = z
  .strictObject({
    cluster: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, 'expected a lowercase DNS-style name like prod-eu-1')
      .default('default')
      .describe('Name of the cluster; snapshots are stored under this prefix so clusters can share a bucket.'),
    etcd: etcdSchema.default(etcdSchema.parse({})),
    store: storeSchema.default(storeSchema.parse({})),
    snapshot: snapshotSchema.default(snapshotSchema.parse({})),
    encryption: encryptionSchema.default(encryptionSchema.parse({})),
    log: logSchema.default(logSchema.parse({})),
    redis: redisSchema.default(redisSchema.parse({})),
    queue: queueSchema.default(queueSchema.parse({})),
    webhook: webhookSchema.default(webhookSchema.parse({})),
    filters: filtersSchema.default(filtersSchema.parse({})),
    watch: watchSchema.default(watchSchema.parse({})),
    dashboard: dashboardSchema.default(dashboardSchema.parse({})),
    certs: certsSchema.default(certsSchema.parse({})),
    auditAuth: auditAuthSchema.default(auditAuthSchema.parse({})),
    admissionAuth: admissionAuthSchema.default(admissionAuthSchema.parse({})),
    metricsAuth: metricsAuthSchema.default(metricsAuthSchema.parse({})),
    executor: executorSchema.default(executorSchema.parse({})),
    retention: retentionSchema.default(retentionSchema.parse({})),
    lifecycle: lifecycleSchema.default(lifecycleSchema.parse({})),
    drill: drillSchema.default(drillSchema.parse({})),
    delta: deltaSchema.default(deltaSchema.parse({})),
    events: eventsSchema.default(eventsSchema.parse({})),
    notify: notifySchema.default(notifySchema.parse({})),
  })
  .refine((c) => c.drill.executor !== 'job' || c.executor.image !== undefined, {
    message:
      'executor.image is required when drill.executor is job (the etcd-autobackup image beside etcd in the drill pod)',
    path: ['executor', 'image'],
  })
  .refine((c) => c.drill.executor !== 'job' || !c.drill.replayLog, {
    message:
      'drill.replayLog runs only with drill.executor: local (the drill Job has no second etcd to replay into): set drill.executor to local or drill.replayLog to false',
    path: ['drill', 'replayLog'],
  });

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type EtcdConfig = Config['etcd'];
export type S3Config = Config['store']['s3'];
export type RetentionConfig = Config['retention'];
export type LifecycleConfig = Config['lifecycle'];
