/**
 * Drills as Kubernetes Jobs (drill.executor: job): in a cluster the worker's image ships Debian's
 * etcd 3.4, which cannot drill snapshots of etcd 3.5/3.6. The Job runs the upstream etcd image of
 * the snapshot's own version (drill.etcdImage) beside this project's image, in one pod sharing an
 * emptyDir `/scratch`. Upstream etcd images are distroless (no shell, no cp), so nothing is copied
 * between images; each step is a container with a plain command, ordered by Kubernetes:
 *
 * 1. init `prepare` (our image): `drill-prepare <id>` downloads and verifies the snapshot to
 *    /scratch/snapshot.db and writes the expectations (worker/drill-pod.ts);
 * 2. init `restore` (etcd image): `etcdutl snapshot restore` (etcdctl with ETCDCTL_API=3 for 3.4)
 *    into /scratch/data;
 * 3. init `etcd` with restartPolicy Always (a native sidecar, Kubernetes >= 1.29): etcd on the
 *    pod's 127.0.0.1 from the restored dir;
 * 4. main `check` (our image): `drill-check` runs the local drill's checks against it and stores
 *    the drill record. The pod ends when `check` exits; Kubernetes then stops the sidecar.
 *
 * The worker creates the Job, waits for it within drill.job.timeout (plus a minute), and reads back
 * the record this run stored (matched by the run label). A Job that failed before `check` stored a
 * record, vanished, or could not be created becomes a failed drill whose `job` check says why. The
 * spec builder is pure; runDrillJob is the I/O and never throws.
 */
import { createHash, randomBytes } from 'node:crypto';
import { BatchV1Api, type KubeConfig, type V1Container, type V1Job, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { envName, type Config } from '../core/config/index.js';
import { messageOf } from '../core/errors.js';
import { apiFailure, defaultKubeConfig, describeApiError, resolveNamespace } from '../core/kube.js';
import {
  ageIdentityCheck,
  DRILL_FORMAT,
  drillEtcdArgs,
  majorMinor,
  readDrillRecord,
  settleRecord,
  type DrillCheck,
  type DrillRecord,
} from './drill.js';
import { restoreArgv } from './etcd-tools.js';
import { finished, forwardedEnv, JobExecutor, JobGone, jobPodAccess, LABELS } from './job-executor.js';
import type { Manifest } from './manifest.js';
import type { Store } from './stores/store.js';

export type DrillJobConfig = Pick<
  Config,
  'cluster' | 'etcd' | 'store' | 'snapshot' | 'log' | 'executor' | 'drill' | 'encryption'
>;

/**
 * What the pod's CLI gets as env: the snapshot Job's settings plus the key and identity file paths,
 * which drill.job.secretMounts makes resolve in the pod (the recipients only write, so they stay).
 */
const DRILL_FORWARDED = /^(cluster|etcd\.|store\.|snapshot\.|encryption\.(keyFile|decryptionKeyFiles|identityFiles)$)/;

export const SCRATCH = '/scratch';
const CONFIG_DIR = '/etc/etcd-autobackup';
/** Where the upstream etcd images keep their binaries. */
const ETCD_BIN = '/usr/local/bin';
const RUN_ANNOTATION = 'etcd-autobackup.io/drill-of';

export interface DrillJobInput {
  name: string;
  namespace: string;
  /** Marks this run's pod and record apart from an earlier drill of the same snapshot. */
  nonce: string;
  /** The etcd's ports on the pod's loopback. @defaultValue 2379 and 2380 */
  clientPort?: number;
  peerPort?: number;
}

/** The Job name of one drill run: per snapshot and run, within the 63 characters of a label value. */
export function drillJobName(cluster: string, id: string, nonce: string): string {
  const hash = createHash('sha256').update(`${cluster}\0${id}\0${nonce}`).digest('hex').slice(0, 10);
  return `etcd-drill-${cluster
    .slice(0, 39)
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/-+$/, '')}-${hash}`;
}

/** drill.etcdImage with the snapshot's etcd version, e.g. gcr.io/etcd-development/etcd:v3.6.4. */
export function etcdImageFor(template: string, version: string): string {
  if (!/^\d+\.\d+\.\d+[0-9A-Za-z.+-]*$/.test(version))
    throw new Error(`the manifest's etcd version "${version}" is not a version an image tag can be made of`);
  return template.replaceAll('{version}', version);
}

/** etcdutl from 3.5 on (3.6 has no `etcdctl snapshot restore`); etcdctl with ETCDCTL_API=3 for 3.4. */
export function restoreContainer(version: string, image: string, peer: string, id: string): V1Container {
  const mm = majorMinor(version);
  const etcdutl = mm !== undefined && (mm[0] > 3 || (mm[0] === 3 && mm[1] >= 5));
  return {
    name: 'restore',
    image,
    command: [`${ETCD_BIN}/${etcdutl ? 'etcdutl' : 'etcdctl'}`],
    args: restoreArgv({
      file: `${SCRATCH}/snapshot.db`,
      dataDir: `${SCRATCH}/data`,
      name: 'drill',
      initialCluster: `drill=${peer}`,
      initialClusterToken: `drill-${id}`.slice(0, 63),
      initialAdvertisePeerUrls: peer,
    }),
    ...(etcdutl ? {} : { env: [{ name: 'ETCDCTL_API', value: '3' }] }),
  };
}

export function buildDrillJob(config: DrillJobConfig, manifest: Manifest, input: DrillJobInput): V1Job {
  const ex = config.executor;
  const job = config.drill.job;
  if (!ex.image) throw new Error('executor.image is required when drill.executor is job');
  const version = manifest.etcd.version;
  const etcdImage = etcdImageFor(config.drill.etcdImage, version);
  const client = `http://127.0.0.1:${input.clientPort ?? 2379}`;
  const peer = `http://127.0.0.1:${input.peerPort ?? 2380}`;
  const labels = { [LABELS.name]: 'etcd-autobackup', [LABELS.component]: 'drill', [LABELS.cluster]: config.cluster };
  const securityContext = {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    runAsUser: job.runAsUser,
    capabilities: { drop: ['ALL'] },
  };
  const scratch = { name: 'scratch', mountPath: SCRATCH };
  // Only our containers read keys: the etcd image's never get them.
  const secrets = job.secretMounts;
  const ours = (name: string, args: string[]): V1Container => ({
    name,
    image: ex.image,
    imagePullPolicy: ex.imagePullPolicy,
    ...(ex.command ? { command: ex.command } : {}),
    args: [...args, ...(ex.configMap ? ['--config', `${CONFIG_DIR}/config.yaml`] : [])],
    env: [
      ...forwardedEnv(config, DRILL_FORWARDED),
      { name: envName('log-format'), value: 'json' },
      { name: envName('log-level'), value: config.log.level },
    ],
    ...(ex.envFromSecret ? { envFrom: [{ secretRef: { name: ex.envFromSecret } }] } : {}),
    resources: job.resources,
    securityContext,
    volumeMounts: [
      scratch,
      { name: 'tmp', mountPath: '/tmp' },
      // The file alone, as in the worker Deployment: the key Secrets mount below CONFIG_DIR, and no
      // mount point can be made inside a (read-only) ConfigMap volume.
      ...(ex.configMap
        ? [{ name: 'config', mountPath: `${CONFIG_DIR}/config.yaml`, subPath: 'config.yaml', readOnly: true }]
        : []),
      ...secrets.map((m, i) => ({ name: `secret-${i}`, mountPath: m.mountPath, readOnly: true })),
    ],
  });
  const etcdSide = (c: V1Container): V1Container => ({
    ...c,
    imagePullPolicy: ex.imagePullPolicy,
    resources: job.resources,
    securityContext,
    volumeMounts: [scratch],
  });
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: input.name,
      namespace: input.namespace,
      labels,
      annotations: { [RUN_ANNOTATION]: manifest.id },
    },
    spec: {
      // A drill is not retried by the Job controller: a failure is the result.
      backoffLimit: 0,
      activeDeadlineSeconds: Math.ceil(job.timeout / 1000),
      ttlSecondsAfterFinished: job.ttlSecondsAfterFinished,
      template: {
        metadata: { labels: { ...labels, [LABELS.run]: input.nonce } },
        spec: {
          restartPolicy: 'Never',
          // Never the node's network: the throwaway etcd's 127.0.0.1:2379 must be the pod's own,
          // not a control-plane node's where the live etcd listens.
          hostNetwork: false,
          nodeSelector: job.nodeSelector,
          tolerations: job.tolerations,
          ...jobPodAccess(ex),
          securityContext: {
            seccompProfile: { type: 'RuntimeDefault' },
            runAsNonRoot: true,
            runAsUser: job.runAsUser,
            runAsGroup: job.runAsUser,
            fsGroup: job.runAsUser,
          },
          initContainers: [
            ours('prepare', [
              'drill-prepare',
              manifest.id,
              '--scratch',
              SCRATCH,
              '--job',
              input.name,
              '--run',
              input.nonce,
              '--etcd-image',
              etcdImage,
            ]),
            etcdSide(restoreContainer(version, etcdImage, peer, manifest.id)),
            etcdSide({
              name: 'etcd',
              image: etcdImage,
              restartPolicy: 'Always',
              command: [`${ETCD_BIN}/etcd`],
              args: drillEtcdArgs(`${SCRATCH}/data`, client, peer),
            }),
          ],
          containers: [
            ours('check', [
              'drill-check',
              '--scratch',
              SCRATCH,
              '--endpoint',
              client,
              '--etcd-version',
              version,
              '--start-timeout-ms',
              String(config.drill.startTimeout),
            ]),
          ],
          volumes: [
            { name: 'scratch', emptyDir: { sizeLimit: job.scratchSizeLimit } },
            { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
            ...(ex.configMap ? [{ name: 'config', configMap: { name: ex.configMap } }] : []),
            ...secrets.map((m, i) => ({
              name: `secret-${i}`,
              secret: {
                secretName: m.secretName,
                ...(m.items ? { items: m.items } : {}),
                ...(m.defaultMode !== undefined ? { defaultMode: m.defaultMode } : {}),
              },
            })),
          ],
        },
      },
    },
  };
}

/** Which container of a drill pod stopped it and how, e.g. `; pod x: init container restore exit code 1`. */
export function describeDrillPod(pod: V1Pod | undefined): string {
  if (!pod) return '; no pod was created';
  const name = pod.metadata?.name ?? '?';
  const statuses = [
    ...(pod.status?.initContainerStatuses ?? []).map((s) => ({ s, kind: 'init container' })),
    ...(pod.status?.containerStatuses ?? []).map((s) => ({ s, kind: 'container' })),
  ];
  for (const { s, kind } of statuses) {
    const t = s.state?.terminated;
    if (t && t.exitCode !== 0)
      return `; pod ${name}: ${kind} ${s.name} exit code ${t.exitCode}${t.reason ? ` (${t.reason})` : ''}`;
    const w = s.state?.waiting;
    if (w?.reason && w.reason !== 'PodInitializing')
      return `; pod ${name}: ${kind} ${s.name} ${w.reason}${w.message ? `: ${w.message}` : ''}`;
  }
  const unscheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (unscheduled)
    return `; pod ${name}: ${unscheduled.reason ?? 'not scheduled'}${unscheduled.message ? `: ${unscheduled.message}` : ''}`;
  return `; pod ${name}: ${pod.status?.phase ?? 'unknown phase'}`;
}

export interface DrillJobOptions {
  config: DrillJobConfig;
  store: Store;
  kube: KubeConfig;
  namespace: string;
  manifest: Manifest;
  log: Logger;
  signal?: AbortSignal;
  /** Extra wait beyond drill.job.timeout before the worker gives up. @defaultValue 60000 */
  graceMs?: number;
  /** Re-reads after a watch broke off wait this long. @defaultValue 5000 */
  retryDelayMs?: number;
  /** For tests: the etcd's ports in the pod. */
  ports?: { client: number; peer: number };
  now?: () => Date;
}

/** Runs one drill as a Job and returns its record (stored by the pod, or made here when it failed). */
export async function runDrillJob(options: DrillJobOptions): Promise<DrillRecord> {
  const { config, manifest, namespace } = options;
  const now = options.now ?? (() => new Date());
  const started = now();
  const nonce = randomBytes(6).toString('hex');
  const name = drillJobName(config.cluster, manifest.id, nonce);
  const where = `Job ${namespace}/${name}`;
  const log = options.log.child({ job: name, id: manifest.id });
  let etcdImage = '';
  const failed = (detail: string): DrillRecord => failedWith([{ name: 'job', ok: false, detail }]);
  const failedWith = (checks: DrillCheck[]): DrillRecord => {
    const record: DrillRecord = {
      format: DRILL_FORMAT,
      id: manifest.id,
      cluster: manifest.cluster,
      at: started.toISOString(),
      durationMs: now().getTime() - started.getTime(),
      ok: false,
      checks,
      executor: { kind: 'job', job: name, run: nonce, etcdImage },
    };
    settleRecord(record);
    log.error({ failure: record.failure }, 'drill failed');
    return record;
  };
  const jobs = new JobExecutor({
    config,
    store: options.store,
    kube: options.kube,
    namespace,
    ...(options.retryDelayMs !== undefined ? { retryDelayMs: options.retryDelayMs } : {}),
  });
  let body: V1Job;
  try {
    body = buildDrillJob(config, manifest, {
      name,
      namespace,
      nonce,
      ...(options.ports ? { clientPort: options.ports.client, peerPort: options.ports.peer } : {}),
    });
    etcdImage = body.spec?.template.spec?.initContainers?.[1]?.image ?? '';
  } catch (err) {
    return failed(messageOf(err));
  }
  // As a local drill does: no pod for what it could not decrypt.
  const noIdentity = ageIdentityCheck(manifest, config.encryption.identityFiles.length > 0);
  if (noIdentity) return failedWith([noIdentity]);
  try {
    await options.kube.makeApiClient(BatchV1Api).createNamespacedJob({ namespace, body });
  } catch (err) {
    return failed(
      `creating ${where} failed: ${describeApiError(err)}${apiFailure(err)?.code === 403 ? ' (the worker Role needs create on jobs.batch: the chart grants it when drill.executor is job)' : ''}`,
    );
  }
  log.info({ etcdImage }, 'drill Job created');
  const bound = AbortSignal.timeout(config.drill.job.timeout + (options.graceMs ?? 60_000));
  const signal = options.signal ? AbortSignal.any([options.signal, bound]) : bound;
  let job: V1Job;
  try {
    job = await jobs.waitFinished(name, signal, log);
  } catch (err) {
    if (err instanceof JobGone) return failed(err.message);
    if (bound.aborted)
      return failed(`${where} did not finish within drill.job.timeout (${config.drill.job.timeout} ms) and a minute`);
    return failed(messageOf(err));
  }
  const stored = await readDrillRecord(options.store, config.cluster, manifest.id);
  if (stored?.executor?.kind === 'job' && stored.executor.run === nonce) {
    log.info({ ok: stored.ok, failure: stored.failure }, 'drill Job finished');
    return stored;
  }
  const pod = await jobs.podOf(job).catch(() => undefined);
  const lines = config.executor.logTailLines;
  const tail = (await Promise.all(['check', 'prepare', 'restore', 'etcd'].map((c) => jobs.podLog(pod, lines, c)))).find(
    (t) => t.trim() !== '',
  );
  const cond = job.status?.conditions?.find((c) => c.type === 'Failed');
  const state = finished(job) === 'Complete' ? 'completed without storing a drill record' : 'failed';
  const why = [cond?.reason, cond?.message].filter(Boolean).join(': ');
  return failed(
    `${where} ${state}${why ? ` (${why})` : ''}${describeDrillPod(pod)}${tail ? `; last log lines: ${tail.trim().split('\n').slice(-lines).join(' | ')}` : ''}`,
  );
}

/** The drill Job runner for a worker in a pod: its service account, executor.namespace or its own. */
export function drillJobRunnerFor(
  config: DrillJobConfig,
  store: Store,
): (manifest: Manifest, log: Logger, signal?: AbortSignal) => Promise<DrillRecord> {
  let target: { kube: KubeConfig; namespace: string } | undefined;
  return async (manifest, log, signal) => {
    try {
      if (!target) {
        const kube = defaultKubeConfig();
        target = { kube, namespace: resolveNamespace(kube, config.executor.namespace) };
      }
    } catch (err) {
      const record: DrillRecord = {
        format: DRILL_FORMAT,
        id: manifest.id,
        cluster: manifest.cluster,
        at: new Date().toISOString(),
        durationMs: 0,
        ok: false,
        checks: [{ name: 'job', ok: false, detail: `drill.executor is job, but ${messageOf(err)}` }],
      };
      settleRecord(record);
      return record;
    }
    return runDrillJob({ config, store, ...target, manifest, log, ...(signal ? { signal } : {}) });
  };
}
