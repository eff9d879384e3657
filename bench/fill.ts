/**
 * Fills an etcd with values that compress the way a Kubernetes etcd does: mostly structured object
 * text (repetitive field names, random ids), some base64 secrets and certificates, some opaque
 * binary. A run of identical bytes would flatter gzip and make the compressed variants meaningless.
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

const KINDS = ['Pod', 'ConfigMap', 'Deployment', 'Service', 'ReplicaSet', 'Endpoints', 'Secret'] as const;
const IMAGES = [
  'registry.k8s.io/pause:3.9',
  'docker.io/library/nginx:1.27',
  'ghcr.io/example/api:v2.14.3',
  'quay.io/prometheus/node-exporter:v1.8.2',
];

/** A small deterministic PRNG for structure choices; crypto randomness is reserved for payload bytes. */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x1_0000_0000;
  };
}

function objectText(rand: () => number, id: string): string {
  const kind = KINDS[Math.floor(rand() * KINDS.length)] ?? 'Pod';
  const ns = `team-${Math.floor(rand() * 40)}`;
  const name = `${kind.toLowerCase()}-${id}`;
  const image = IMAGES[Math.floor(rand() * IMAGES.length)] ?? 'nginx';
  const replicas = 1 + Math.floor(rand() * 5);
  return (
    `{"apiVersion":"v1","kind":"${kind}","metadata":{"name":"${name}","namespace":"${ns}",` +
    `"uid":"${randomBytes(16).toString('hex')}","resourceVersion":"${Math.floor(rand() * 1e9)}",` +
    `"creationTimestamp":"2026-0${1 + Math.floor(rand() * 9)}-1${Math.floor(rand() * 9)}T0${Math.floor(rand() * 9)}:12:45Z",` +
    `"labels":{"app.kubernetes.io/name":"${name}","app.kubernetes.io/part-of":"shop","pod-template-hash":"${randomBytes(5).toString('hex')}"},` +
    `"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"apps/v1","fieldsType":"FieldsV1"}]},` +
    `"spec":{"replicas":${replicas},"containers":[{"name":"main","image":"${image}","resources":{"requests":{"cpu":"${100 * replicas}m","memory":"${64 * replicas}Mi"}},` +
    `"env":[{"name":"POD_IP","valueFrom":{"fieldRef":{"fieldPath":"status.podIP"}}}]}]},` +
    `"status":{"phase":"Running","podIP":"10.${Math.floor(rand() * 255)}.${Math.floor(rand() * 255)}.${Math.floor(rand() * 255)}"}}\n`
  );
}

/** One value of `size` bytes: ~75% object text, ~17% base64 of random bytes, ~8% raw random bytes. */
export function makeValue(size: number, seed: number): Buffer {
  const rand = prng(seed);
  const parts: Buffer[] = [];
  let length = 0;
  let n = 0;
  while (length < size) {
    const r = rand();
    let part: Buffer;
    if (r < 0.8) part = Buffer.from(objectText(rand, `${seed.toString(36)}-${n++}`));
    else if (r < 0.93) part = Buffer.from(`"tls.crt":"${randomBytes(900).toString('base64')}"\n`);
    else part = randomBytes(512 + Math.floor(rand() * 1024));
    parts.push(part);
    length += part.length;
  }
  return Buffer.concat(parts, length).subarray(0, size);
}

/**
 * Writes values of `valueSize` bytes until at least `totalBytes` are stored, with `concurrency`
 * puts in flight so etcd's batched commits, not round trips, set the pace.
 */
export async function fillEtcd(
  client: Etcd3,
  totalBytes: number,
  options: { valueSize?: number; concurrency?: number; prefix?: string; onProgress?: (bytes: number) => void } = {},
): Promise<FillResult> {
  const valueSize = options.valueSize ?? 64 * 1024;
  const concurrency = options.concurrency ?? 16;
  const prefix = options.prefix ?? '/registry/bench/';
  const count = Math.ceil(totalBytes / valueSize);
  const started = performance.now();
  let next = 0;
  let written = 0;
  let sampled = 0;
  let sampledGzip = 0;

  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) {
      const value = makeValue(valueSize, i + 1);
      if (i % 64 === 0) {
        sampled += value.length;
        sampledGzip += gzipSync(value, { level: 6 }).length;
      }
      await client
        .put(`${prefix}${String(i).padStart(8, '0')}`)
        .value(value)
        .exec();
      written += value.length;
      if (i % 256 === 0) options.onProgress?.(written);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return {
    keys: count,
    bytes: written,
    ms: performance.now() - started,
    sampleGzipRatio: sampled / Math.max(1, sampledGzip),
  };
}
