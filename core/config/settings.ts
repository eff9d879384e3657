/**
 * The settings an operator can give on the command line or in the environment, each bound to one
 * path of the config schema. The env var of a flag is derived from it: `--s3-endpoint` is
 * `ETCD_AUTOBACKUP_S3_ENDPOINT`. The YAML file uses the schema paths themselves.
 */

export type SettingKind = 'string' | 'list' | 'bool' | 'int';

export interface Setting {
  /** Long flag name without dashes, e.g. `s3-endpoint`. */
  flag: string;
  /** Dotted path in the config schema, e.g. `store.s3.endpoint`. */
  path: string;
  /** How the flag or env text becomes a value. Durations stay strings: the schema parses them. */
  kind: SettingKind;
  /** One line for --help. */
  help: string;
  /** Never printed, logged or echoed in errors. */
  secret?: boolean;
}

export const SETTINGS: readonly Setting[] = [
  {
    flag: 'cluster',
    path: 'cluster',
    kind: 'string',
    help: 'cluster name; snapshots go under this prefix (default "default")',
  },
  {
    flag: 'endpoints',
    path: 'etcd.endpoints',
    kind: 'list',
    help: 'etcd client URLs, comma-separated (default http://127.0.0.1:2379)',
  },
  { flag: 'cacert', path: 'etcd.cacert', kind: 'string', help: 'CA file that signed the etcd server certs' },
  { flag: 'cert', path: 'etcd.cert', kind: 'string', help: 'etcd client certificate file' },
  { flag: 'key', path: 'etcd.key', kind: 'string', help: 'etcd client key file' },
  {
    flag: 'prefer-leader',
    path: 'etcd.preferLeader',
    kind: 'bool',
    help: 'snapshot from the leader instead of a follower',
  },
  {
    flag: 'etcd-dial-timeout',
    path: 'etcd.dialTimeout',
    kind: 'string',
    help: 'time to wait for a member status call (default 5s)',
  },
  { flag: 'etcd-username', path: 'etcd.username', kind: 'string', help: 'etcd auth user' },
  { flag: 'etcd-password', path: 'etcd.password', kind: 'string', help: 'etcd auth password', secret: true },
  {
    flag: 'etcdctl',
    path: 'etcd.etcdctl',
    kind: 'string',
    help: 'etcdctl binary for verify and restore (default etcdctl)',
  },
  {
    flag: 'store',
    path: 'store.url',
    kind: 'string',
    help: 'where snapshots go: file:///dir, s3://bucket/prefix, ncp://bucket/prefix?region=kr, oci://namespace/bucket/prefix',
  },
  {
    flag: 's3-endpoint',
    path: 'store.s3.endpoint',
    kind: 'string',
    help: 'S3-compatible endpoint URL (MinIO, Ceph, R2...)',
  },
  { flag: 's3-region', path: 'store.s3.region', kind: 'string', help: 'S3 region' },
  {
    flag: 's3-force-path-style',
    path: 'store.s3.forcePathStyle',
    kind: 'bool',
    help: 'path-style S3 addressing (MinIO)',
  },
  {
    flag: 's3-access-key-id',
    path: 'store.s3.accessKeyId',
    kind: 'string',
    help: 'S3 access key id (default: the AWS credential chain)',
  },
  {
    flag: 's3-secret-access-key',
    path: 'store.s3.secretAccessKey',
    kind: 'string',
    help: 'S3 secret access key',
    secret: true,
  },
  { flag: 's3-session-token', path: 'store.s3.sessionToken', kind: 'string', help: 'S3 session token', secret: true },
  {
    flag: 's3-ca-file',
    path: 'store.s3.caFile',
    kind: 'string',
    help: 'extra CA certificates (PEM) for the S3 endpoint',
  },
  {
    flag: 's3-part-size-mib',
    path: 'store.s3.partSizeMiB',
    kind: 'int',
    help: 'multipart part size in MiB (default 8)',
  },
  {
    flag: 'oci-region',
    path: 'store.oci.region',
    kind: 'string',
    help: "OCI region id, e.g. us-ashburn-1 (default: the config file's)",
  },
  {
    flag: 'oci-tenancy',
    path: 'store.oci.tenancy',
    kind: 'string',
    help: 'OCI tenancy OCID (API-key auth without a config file)',
  },
  { flag: 'oci-user', path: 'store.oci.user', kind: 'string', help: 'OCI user OCID' },
  { flag: 'oci-fingerprint', path: 'store.oci.fingerprint', kind: 'string', help: 'fingerprint of the OCI API key' },
  {
    flag: 'oci-private-key-file',
    path: 'store.oci.privateKeyFile',
    kind: 'string',
    help: 'PEM file with the OCI API private key',
  },
  {
    flag: 'oci-passphrase',
    path: 'store.oci.passphrase',
    kind: 'string',
    help: 'passphrase of the OCI private key',
    secret: true,
  },
  {
    flag: 'oci-config-file',
    path: 'store.oci.configFile',
    kind: 'string',
    help: 'OCI config file (default ~/.oci/config)',
  },
  {
    flag: 'oci-profile',
    path: 'store.oci.profile',
    kind: 'string',
    help: 'profile in the OCI config file (default DEFAULT)',
  },
  {
    flag: 'oci-endpoint',
    path: 'store.oci.endpoint',
    kind: 'string',
    help: 'OCI Object Storage endpoint URL (default: from the region)',
  },
  {
    flag: 'oci-part-size-mib',
    path: 'store.oci.partSizeMiB',
    kind: 'int',
    help: 'OCI multipart part size in MiB (default 10)',
  },
  { flag: 'compression', path: 'snapshot.compression', kind: 'string', help: 'zstd, gzip or none (default zstd)' },
  {
    flag: 'compression-level',
    path: 'snapshot.compressionLevel',
    kind: 'int',
    help: 'zstd 1-19 (default 3) or gzip 1-9 (default 3)',
  },
  {
    flag: 'snapshot-timeout',
    path: 'snapshot.timeout',
    kind: 'string',
    help: 'give up on a snapshot after this long (default 30m)',
  },
  {
    flag: 'encryption-key-file',
    path: 'encryption.keyFile',
    kind: 'string',
    help: 'file with the 256-bit key (32 raw bytes or base64) that encrypts new snapshots',
  },
  {
    flag: 'decryption-key-files',
    path: 'encryption.decryptionKeyFiles',
    kind: 'list',
    help: 'comma-separated key files that only decrypt (old keys after a rotation)',
  },
  {
    flag: 'age-recipients',
    path: 'encryption.recipients',
    kind: 'list',
    help: 'comma-separated age recipients (age1...) to encrypt new snapshots to',
  },
  {
    flag: 'age-recipients-file',
    path: 'encryption.recipientsFile',
    kind: 'string',
    help: 'file of age recipients, one per line (as age -R reads it)',
  },
  {
    flag: 'identity',
    path: 'encryption.identityFiles',
    kind: 'list',
    help: 'comma-separated age identity files that decrypt age snapshots (verify, restore)',
  },
  {
    flag: 'redis-url',
    path: 'redis.url',
    kind: 'string',
    help: 'Redis URL for the queue (default redis://127.0.0.1:6379)',
    secret: true,
  },
  { flag: 'redis-password', path: 'redis.password', kind: 'string', help: 'Redis password', secret: true },
  { flag: 'redis-sentinels', path: 'redis.sentinels', kind: 'list', help: 'Redis Sentinel host:port list' },
  {
    flag: 'redis-sentinel-name',
    path: 'redis.sentinelName',
    kind: 'string',
    help: 'Sentinel master name (default mymaster)',
  },
  {
    flag: 'debounce-window',
    path: 'queue.debounceWindow',
    kind: 'string',
    help: 'one snapshot per window of changes, e.g. 2s, 5m (default 5m)',
  },
  {
    flag: 'max-interval',
    path: 'queue.maxInterval',
    kind: 'string',
    help: 'a snapshot at least this often, e.g. 24h; 0 for never (default 24h)',
  },
  {
    flag: 'lock-duration',
    path: 'queue.lockDuration',
    kind: 'string',
    help: "a crashed worker's snapshot job is retried after about this long (default 60s)",
  },
  {
    flag: 'enqueue-timeout',
    path: 'queue.enqueueTimeout',
    kind: 'string',
    help: 'snapshot --enqueue: give up when Redis has not taken the job after this long (default 30s)',
  },
  {
    flag: 'shutdown-grace',
    path: 'queue.shutdownGrace',
    kind: 'string',
    help: 'on SIGTERM, how long the running snapshot may finish (default 25s)',
  },
  {
    flag: 'listen',
    path: 'webhook.listen',
    kind: 'string',
    help: 'HOST:PORT of the HTTP server (default 127.0.0.1:8080)',
  },
  { flag: 'watch', path: 'watch.enabled', kind: 'bool', help: 'also watch etcd for changes under /registry/' },
  { flag: 'watch-prefix', path: 'watch.prefix', kind: 'string', help: 'etcd key prefix to watch (default /registry/)' },
  { flag: 'dashboard-user', path: 'dashboard.user', kind: 'string', help: 'basic-auth user of the /queues dashboard' },
  {
    flag: 'dashboard-password',
    path: 'dashboard.password',
    kind: 'string',
    help: 'basic-auth password of the /queues dashboard',
    secret: true,
  },
  // --- delta log
  { flag: 'delta', path: 'delta.enabled', kind: 'bool', help: 'write the delta log (docs/delta-log.md; default off)' },
  {
    flag: 'delta-flush-interval',
    path: 'delta.flushInterval',
    kind: 'string',
    help: 'most time a change waits before its segment is stored (default 10s)',
  },
  {
    flag: 'delta-max-segment-bytes',
    path: 'delta.maxSegmentBytes',
    kind: 'int',
    help: 'store a segment early at this many bytes of events (default 8388608)',
  },
  // --- end delta log
  {
    flag: 'notify-webhook-url',
    path: 'notify.webhook.url',
    kind: 'string',
    help: 'URL notifications are POSTed to (docs/notifications.md)',
    secret: true,
  },
  {
    flag: 'retention',
    path: 'retention.enabled',
    kind: 'bool',
    help: 'delete old snapshots by the keep counts (default on; --no-retention keeps all)',
  },
  {
    flag: 'prune-after-snapshot',
    path: 'retention.afterSnapshot',
    kind: 'bool',
    help: 'prune after each successful snapshot (default on)',
  },
  { flag: 'keep-last', path: 'retention.keepLast', kind: 'int', help: 'keep the newest N snapshots (default 10)' },
  {
    flag: 'keep-hourly',
    path: 'retention.hourly',
    kind: 'int',
    help: 'keep one snapshot for each of the last N hours (default 24)',
  },
  {
    flag: 'keep-daily',
    path: 'retention.daily',
    kind: 'int',
    help: 'keep one snapshot for each of the last N days (default 7)',
  },
  {
    flag: 'keep-weekly',
    path: 'retention.weekly',
    kind: 'int',
    help: 'keep one snapshot for each of the last N weeks (default 4)',
  },
  {
    flag: 'keep-monthly',
    path: 'retention.monthly',
    kind: 'int',
    help: 'keep one snapshot for each of the last N months (default 6)',
  },
  {
    flag: 'orphan-age',
    path: 'retention.orphanAge',
    kind: 'string',
    help: 'delete orphaned objects older than this (default 24h)',
  },
  {
    flag: 'lifecycle',
    path: 'lifecycle.enabled',
    kind: 'bool',
    help: 'allow `lifecycle apply` to set a bucket lifecycle rule (default off)',
  },
  {
    flag: 'lifecycle-transition-days',
    path: 'lifecycle.transitionDays',
    kind: 'int',
    help: 'days until snapshots move to the archive class; 0 never (default 60)',
  },
  {
    flag: 'lifecycle-expire-days',
    path: 'lifecycle.expireDays',
    kind: 'int',
    help: 'days until the provider deletes snapshots; 0 never (default 180)',
  },
  {
    flag: 'lifecycle-storage-class',
    path: 'lifecycle.storageClass',
    kind: 'string',
    help: 'archive class (s3 default GLACIER, oci default Archive)',
  },
  {
    flag: 'tls-cert-file',
    path: 'webhook.tls.certFile',
    kind: 'string',
    help: 'PEM serving certificate: serve HTTPS (reloaded when the file changes)',
  },
  { flag: 'tls-key-file', path: 'webhook.tls.keyFile', kind: 'string', help: 'PEM key of --tls-cert-file' },
  {
    flag: 'manage-certs',
    path: 'certs.manage',
    kind: 'bool',
    help: 'generate and renew the webhook certificates in a Secret; patch the webhook caBundle',
  },
  {
    flag: 'certs-namespace',
    path: 'certs.namespace',
    kind: 'string',
    help: "namespace of the certificate Secret and webhook Service (default: the pod's)",
  },
  {
    flag: 'webhook-config-name',
    path: 'certs.webhookConfigName',
    kind: 'string',
    help: 'ValidatingWebhookConfiguration whose caBundle is kept current',
  },
  {
    flag: 'audit-client-ca',
    path: 'auditAuth.clientCaFile',
    kind: 'string',
    help: 'CA file: /audit requires a client certificate it signed',
  },
  {
    flag: 'audit-token-file',
    path: 'auditAuth.tokenFile',
    kind: 'string',
    help: 'file with the bearer token /audit requires',
  },
  {
    flag: 'metrics-token-file',
    path: 'metricsAuth.tokenFile',
    kind: 'string',
    help: 'file with the bearer token GET /metrics requires',
  },
  {
    flag: 'executor',
    path: 'executor.mode',
    kind: 'string',
    help: 'process (default) or job: run each snapshot as a Kubernetes Job on a control-plane node',
  },
  { flag: 'executor-image', path: 'executor.image', kind: 'string', help: 'image of the snapshot Jobs (executor job)' },
  {
    flag: 'drill-executor',
    path: 'drill.executor',
    kind: 'string',
    help: "local (default) or job: run drills as Kubernetes Jobs with the snapshot's etcd version",
  },
  {
    flag: 'drill-etcd-image',
    path: 'drill.etcdImage',
    kind: 'string',
    help: 'etcd image of drill Jobs, {version} replaced (default gcr.io/etcd-development/etcd:v{version})',
  },
  {
    flag: 'executor-namespace',
    path: 'executor.namespace',
    kind: 'string',
    help: "namespace of the snapshot Jobs (default: the pod's)",
  },
  { flag: 'log-level', path: 'log.level', kind: 'string', help: 'trace, debug, info, warn, error (default info)' },
  {
    flag: 'log-format',
    path: 'log.format',
    kind: 'string',
    help: 'auto, json or pretty (default auto: pretty on a terminal)',
  },
];

export const ENV_PREFIX = 'ETCD_AUTOBACKUP_';

export function envName(flag: string): string {
  return ENV_PREFIX + flag.toUpperCase().replace(/-/g, '_');
}
