/**
 * Fills an etcd with data shaped like a Kubernetes cluster's: one JSON object per key under
 * /registry/<resource>/<namespace>/<name>, with the field names, labels, managedFields and images
 * that repeat across objects, and the uids, IPs, timestamps, resourceVersions, certificates and
 * secret payloads that do not. The mix (by bytes) is roughly Pods 45%, ConfigMaps 25%, Events 15%,
 * Secrets 15%, as in clusters we have looked at. Random bytes would make every codec look equal;
 * a run of identical bytes would flatter them all. Compression ratios are only as real as this.
 */
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { Etcd3 } from 'etcd3';

export interface FillResult {
  keys: number;
  /** Value bytes written (keys not counted). */
  bytes: number;
  ms: number;
  /** Raw / gzip size of a sample of the values, level 6. */
  sampleGzipRatio: number;
}

const IMAGES = [
  'registry.k8s.io/pause:3.9',
  'docker.io/library/nginx:1.27.3',
  'ghcr.io/example/checkout-api:v2.14.3',
  'quay.io/prometheus/node-exporter:v1.8.2',
  'registry.k8s.io/kube-proxy:v1.31.2',
  'docker.io/bitnami/redis:7.4.1-debian-12-r2',
];
const APPS = ['checkout', 'cart', 'search', 'payments', 'catalog', 'auth', 'gateway', 'orders', 'metrics', 'mailer'];
const REASONS = ['Scheduled', 'Pulled', 'Created', 'Started', 'Killing', 'BackOff', 'Unhealthy', 'SuccessfulCreate'];

/** A small deterministic PRNG for structure choices; crypto randomness is reserved for unique values. */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x1_0000_0000;
  };
}

type Rand = () => number;
const pick = <T>(rand: Rand, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
const hex = (n: number): string => randomBytes(n).toString('hex');
const uid = (): string => {
  const h = hex(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};
const stamp = (rand: Rand): string =>
  new Date(Date.UTC(2026, Math.floor(rand() * 11), 1 + Math.floor(rand() * 27), rand() * 24, rand() * 60, rand() * 60))
    .toISOString()
    .replace(/\.\d+Z$/, 'Z');
const ip = (rand: Rand): string =>
  `10.${Math.floor(rand() * 255)}.${Math.floor(rand() * 255)}.${Math.floor(rand() * 255)}`;

function metadata(rand: Rand, name: string, ns: string, app: string, extra = ''): string {
  return (
    `"metadata":{"name":"${name}","namespace":"${ns}","uid":"${uid()}","resourceVersion":"${Math.floor(rand() * 1e9)}",` +
    `"creationTimestamp":"${stamp(rand)}","labels":{"app.kubernetes.io/name":"${app}","app.kubernetes.io/instance":"${app}-prod",` +
    `"app.kubernetes.io/part-of":"shop","pod-template-hash":"${hex(5)}"},${extra}` +
    `"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"${stamp(rand)}",` +
    `"fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:app.kubernetes.io/name":{}}},"f:spec":{"f:containers":{}}}}]}`
  );
}

function pod(rand: Rand, name: string, ns: string, app: string): string {
  const containers = 1 + Math.floor(rand() * 3);
  const cs = Array.from({ length: containers }, (_, i) => {
    const image = pick(rand, IMAGES);
    return (
      `{"name":"${i === 0 ? app : `sidecar-${i}`}","image":"${image}","ports":[{"containerPort":${8000 + i},"protocol":"TCP"}],` +
      `"env":[{"name":"POD_IP","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"status.podIP"}}},{"name":"LOG_LEVEL","value":"info"},` +
      `{"name":"OTEL_EXPORTER_OTLP_ENDPOINT","value":"http://otel-collector.observability:4317"}],` +
      `"resources":{"limits":{"cpu":"${250 * (i + 1)}m","memory":"${128 * (i + 1)}Mi"},"requests":{"cpu":"${50 * (i + 1)}m","memory":"${64 * (i + 1)}Mi"}},` +
      `"volumeMounts":[{"name":"kube-api-access-${hex(3)}","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],` +
      `"livenessProbe":{"httpGet":{"path":"/healthz","port":${8000 + i},"scheme":"HTTP"},"initialDelaySeconds":10,"timeoutSeconds":1,"periodSeconds":10},` +
      `"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}`
    );
  });
  const statuses = Array.from(
    { length: containers },
    (_, i) =>
      `{"name":"${i === 0 ? app : `sidecar-${i}`}","state":{"running":{"startedAt":"${stamp(rand)}"}},"ready":true,"restartCount":${Math.floor(rand() * 3)},` +
      `"image":"${pick(rand, IMAGES)}","imageID":"sha256:${hex(32)}","containerID":"containerd://${hex(32)}","started":true}`,
  );
  return (
    `{"kind":"Pod","apiVersion":"v1",${metadata(rand, name, ns, app, `"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"${app}-${hex(5)}","uid":"${uid()}","controller":true,"blockOwnerDeletion":true}],`)},` +
    `"spec":{"volumes":[{"name":"kube-api-access","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}}],"defaultMode":420}}],` +
    `"containers":[${cs.join(',')}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst",` +
    `"serviceAccountName":"${app}","nodeName":"node-${Math.floor(rand() * 50)}.cluster.internal","schedulerName":"default-scheduler",` +
    `"tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0},` +
    `"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastTransitionTime":"${stamp(rand)}"},` +
    `{"type":"PodScheduled","status":"True","lastTransitionTime":"${stamp(rand)}"}],"hostIP":"${ip(rand)}","podIP":"${ip(rand)}",` +
    `"startTime":"${stamp(rand)}","containerStatuses":[${statuses.join(',')}],"qosClass":"Burstable"}}`
  );
}

function configMap(rand: Rand, name: string, ns: string, app: string): string {
  // Config files: mostly text that repeats within the file, some of it unique (hosts, hashes).
  const lines = 20 + Math.floor(rand() * 400);
  const body = Array.from(
    { length: lines },
    (_, i) =>
      `${app}.setting_${i % 37}.${pick(rand, ['timeout', 'retries', 'endpoint', 'enabled'])}=${i % 5 === 0 ? hex(8) : Math.floor(rand() * 1000)}`,
  ).join('\\n');
  return `{"kind":"ConfigMap","apiVersion":"v1",${metadata(rand, name, ns, app)},"data":{"application.properties":"${body}"}}`;
}

function secret(rand: Rand, name: string, ns: string, app: string): string {
  // Base64 of random bytes: certificates, keys and tokens barely compress beyond base64's 3/4.
  const cert = randomBytes(900 + Math.floor(rand() * 600)).toString('base64');
  const key = randomBytes(1200).toString('base64');
  return (
    `{"kind":"Secret","apiVersion":"v1",${metadata(rand, name, ns, app)},` +
    `"data":{"tls.crt":"${cert}","tls.key":"${key}","ca.crt":"${randomBytes(600).toString('base64')}"},"type":"kubernetes.io/tls"}`
  );
}

function event(rand: Rand, name: string, ns: string, app: string): string {
  const reason = pick(rand, REASONS);
  return (
    `{"kind":"Event","apiVersion":"v1","metadata":{"name":"${name}","namespace":"${ns}","uid":"${uid()}",` +
    `"resourceVersion":"${Math.floor(rand() * 1e9)}","creationTimestamp":"${stamp(rand)}"},` +
    `"involvedObject":{"kind":"Pod","namespace":"${ns}","name":"${app}-${hex(5)}-${hex(3)}","uid":"${uid()}","apiVersion":"v1","resourceVersion":"${Math.floor(rand() * 1e9)}","fieldPath":"spec.containers{${app}}"},` +
    `"reason":"${reason}","message":"${reason === 'Pulled' ? `Container image "${pick(rand, IMAGES)}" already present on machine` : `${reason} ${app} on node-${Math.floor(rand() * 50)}`}",` +
    `"source":{"component":"kubelet","host":"node-${Math.floor(rand() * 50)}.cluster.internal"},"firstTimestamp":"${stamp(rand)}","lastTimestamp":"${stamp(rand)}",` +
    `"count":${1 + Math.floor(rand() * 20)},"type":"${reason === 'BackOff' || reason === 'Unhealthy' ? 'Warning' : 'Normal'}","reportingComponent":"kubelet","reportingInstance":"node-${Math.floor(rand() * 50)}"}`
  );
}

/** By count; the byte shares in the header follow from the object sizes. */
const RESOURCES = [
  { resource: 'pods', weight: 0.3, make: pod },
  { resource: 'configmaps', weight: 0.12, make: configMap },
  { resource: 'secrets', weight: 0.18, make: secret },
  { resource: 'events', weight: 0.4, make: event },
] as const;

/** The key and value of object number `i`. */
export function makeObject(i: number): { key: string; value: Buffer } {
  const rand = prng(i + 1);
  let r = rand();
  const kind = RESOURCES.find((k) => (r -= k.weight) < 0) ?? RESOURCES[0];
  const ns = `team-${Math.floor(rand() * 40)}`;
  const app = pick(rand, APPS);
  const name = `${app}-${hex(5)}-${hex(3)}`;
  return { key: `/registry/${kind.resource}/${ns}/${name}`, value: Buffer.from(kind.make(rand, name, ns, app)) };
}

/** Ops per transaction: under etcd's default --max-txn-ops (128). */
const TXN_OPS = 100;
/** Bytes per transaction: under etcd's default --max-request-bytes (1.5 MiB). */
const TXN_BYTES = 1024 * 1024;

/**
 * Writes objects until at least `totalBytes` of values are stored, in transactions of up to
 * TXN_OPS puts with `concurrency` transactions in flight. etcd fsyncs each commit, so one put per
 * request made the fill fsync-bound (256 MiB took 65 s on this machine, 25-28 s batched, 2 GiB 7
 * minutes), which made the 2 GiB flatness run impractical. Every object is still its own key;
 * only the revisions differ (one per transaction), which a snapshot's size and shape do not.
 */
export async function fillEtcd(
  client: Etcd3,
  totalBytes: number,
  options: { concurrency?: number; onProgress?: (bytes: number) => void } = {},
): Promise<FillResult> {
  const concurrency = options.concurrency ?? 4;
  const started = performance.now();
  let next = 0;
  let queued = 0;
  let written = 0;
  let sampled = 0;
  let sampledGzip = 0;
  let lastShown = 0;

  const worker = async (): Promise<void> => {
    while (queued < totalBytes) {
      const ops: { request_put: { key: Buffer; value: Buffer } }[] = [];
      let bytes = 0;
      while (ops.length < TXN_OPS && bytes < TXN_BYTES && queued < totalBytes) {
        const i = next++;
        const { key, value } = makeObject(i);
        if (i % 64 === 0) {
          sampled += value.length;
          sampledGzip += gzipSync(value, { level: 6 }).length;
        }
        ops.push({ request_put: { key: Buffer.from(key), value } });
        bytes += value.length;
        queued += value.length;
      }
      await client.kv.txn({ compare: [], success: ops, failure: [] });
      written += bytes;
      if (written - lastShown > 16 * 1024 * 1024) {
        lastShown = written;
        options.onProgress?.(written);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return {
    keys: next,
    bytes: written,
    ms: performance.now() - started,
    sampleGzipRatio: sampled / Math.max(1, sampledGzip),
  };
}
