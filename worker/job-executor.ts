/**
 * The Kubernetes Job executor (executor.mode: job): for clusters whose etcd listens only on the
 * control-plane hosts, each snapshot runs as a batch/v1 Job there (host network, the etcd
 * certificates mounted read-only from the host) running this image's `snapshot --json`. The
 * worker waits for the Job, reads the manifest it printed, confirms it from the store, and on
 * failure reports the pod's last log lines.
 *
 * One Job per cluster at a time: the pool runs this under its per-cluster Redis lock, and since a
 * Job outlives a worker that crashed or shut down, the executor also waits for any other unfinished
 * snapshot Job of the cluster before starting one. The Job name is derived from the queue job id, so
 * a re-run of the same queue job (after a crash) gets 409 AlreadyExists and adopts its Job.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  BatchV1Api,
  CoreV1Api,
  Watch,
  type KubeConfig,
  type V1EnvVar,
  type V1Job,
  type V1Pod,
  type V1PodSpec,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Cause } from '../core/cause.js';
import { SETTINGS, envName, type Config } from '../core/config/index.js';
import { messageOf, SNAPSHOT_STAGES, SnapshotError, type SnapshotStage } from '../core/errors.js';
import { apiFailure, defaultKubeConfig, describeApiError, resolveNamespace } from '../core/kube.js';
import { SNAPSHOT_CAUSE_ENV } from './job-cause.js';
import { manifestKey, manifestSchema, type Manifest } from './manifest.js';
import { readManifest } from './manifest-read.js';
import type { SnapshotRun } from './pool.js';
import type { Store } from './stores/store.js';

export type JobExecutorConfig = Pick<Config, 'cluster' | 'etcd' | 'store' | 'snapshot' | 'log' | 'executor'>;

export interface JobExecutorOptions {
  config: JobExecutorConfig;
  store: Store;
  kube: KubeConfig;
  namespace: string;
  /** Re-reads after a watch broke off wait this long. */
  retryDelayMs?: number;
  /** Each watch request lasts at most this long before it is renewed. */
  watchTimeoutSeconds?: number;
}

export const LABELS = {
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  cluster: 'etcd-autobackup.io/cluster',
  run: 'etcd-autobackup.io/run',
} as const;
const QUEUE_JOB_ANNOTATION = 'etcd-autobackup.io/queue-job';
const CONTAINER = 'snapshot';
const CONFIG_DIR = '/etc/etcd-autobackup';
/** The settings a snapshot needs; secrets among them come from executor.envFromSecret instead. */
const FORWARDED = /^(cluster|etcd\.|store\.|snapshot\.)/;

/** A Job name per queue job: stable across re-runs, within the 63 characters of a label value. */
export function snapshotJobName(cluster: string, jobId: string): string {
  const hash = createHash('sha256').update(`${cluster}\0${jobId}`).digest('hex').slice(0, 10);
  return `etcd-snapshot-${cluster
    .slice(0, 36)
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/-+$/, '')}-${hash}`;
}

/** The worker's snapshot settings (those `paths` matches) as the env vars the same CLI reads in the Job. */
export function forwardedEnv(config: JobExecutorConfig, paths: RegExp = FORWARDED): V1EnvVar[] {
  const env: V1EnvVar[] = [];
  for (const s of SETTINGS) {
    if (s.secret || !paths.test(s.path)) continue;
    const value = s.path
      .split('.')
      .reduce<unknown>((node, k) => (node as Record<string, unknown> | undefined)?.[k], config);
    if (value === undefined) continue;
    // Durations are parsed to milliseconds; a bare number would not parse back as a duration.
    let text: string;
    if (Array.isArray(value)) text = value.join(',');
    else if (typeof value === 'number') text = s.kind === 'string' ? `${value}ms` : String(value);
    else if (typeof value === 'string' || typeof value === 'boolean') text = String(value);
    else continue;
    env.push({ name: envName(s.flag), value: text });
  }
  return env;
}

export interface JobSpecInput {
  name: string;
  namespace: string;
  jobId: string;
  cause: Cause;
  /** Marks this Job's pods apart from those of an earlier Job of the same name. */
  nonce: string;
}

/**
 * What every Job pod of ours (snapshot and drill) pulls with and runs as: the configured pull secrets, and the
 * service account when one is named; otherwise no API token at all, since the pod never calls the API.
 */
export function jobPodAccess(
  ex: Config['executor'],
): Pick<V1PodSpec, 'imagePullSecrets' | 'serviceAccountName' | 'automountServiceAccountToken'> {
  return {
    ...(ex.imagePullSecrets.length > 0 ? { imagePullSecrets: ex.imagePullSecrets.map((name) => ({ name })) } : {}),
    ...(ex.serviceAccountName
      ? { serviceAccountName: ex.serviceAccountName }
      : { automountServiceAccountToken: false }),
  };
}

export function buildSnapshotJob(config: JobExecutorConfig, input: JobSpecInput): V1Job {
  const ex = config.executor;
  if (!ex.image) throw new Error('executor.image is required when executor.mode is job');
  const labels = { [LABELS.name]: 'etcd-autobackup', [LABELS.component]: 'snapshot', [LABELS.cluster]: config.cluster };
  const env: V1EnvVar[] = [
    ...forwardedEnv(config),
    { name: envName('log-format'), value: 'json' },
    { name: envName('log-level'), value: config.log.level },
    { name: SNAPSHOT_CAUSE_ENV, value: JSON.stringify(input.cause) },
  ];
  const deadlineSeconds = Math.ceil((config.snapshot.timeout + ex.startTimeout) / 1000);
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: input.name,
      namespace: input.namespace,
      labels,
      annotations: { [QUEUE_JOB_ANNOTATION]: input.jobId },
    },
    spec: {
      // Retries belong to the queue (backoff, attempts, dashboard), not to the Job controller.
      backoffLimit: 0,
      activeDeadlineSeconds: deadlineSeconds,
      ttlSecondsAfterFinished: ex.ttlSecondsAfterFinished,
      template: {
        metadata: { labels: { ...labels, [LABELS.run]: input.nonce } },
        spec: {
          restartPolicy: 'Never',
          hostNetwork: ex.hostNetwork,
          dnsPolicy: ex.hostNetwork ? 'ClusterFirstWithHostNet' : 'ClusterFirst',
          nodeSelector: ex.nodeSelector,
          tolerations: ex.tolerations,
          ...jobPodAccess(ex),
          // The pod runs as root in the node's network with a host folder: the runtime's default
          // syscall filter is the least it should have (docs/job-executor.md).
          securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: CONTAINER,
              image: ex.image,
              imagePullPolicy: ex.imagePullPolicy,
              ...(ex.command ? { command: ex.command } : {}),
              args: ['snapshot', '--json', ...(ex.configMap ? ['--config', `${CONFIG_DIR}/config.yaml`] : [])],
              env,
              ...(ex.envFromSecret ? { envFrom: [{ secretRef: { name: ex.envFromSecret } }] } : {}),
              resources: ex.resources,
              securityContext: {
                runAsUser: ex.runAsUser,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [
                { name: 'etcd-certs', mountPath: ex.etcdCertPath, readOnly: true },
                { name: 'tmp', mountPath: '/tmp' },
                ...(ex.configMap ? [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }] : []),
              ],
            },
          ],
          volumes: [
            { name: 'etcd-certs', hostPath: { path: ex.etcdCertPath, type: 'Directory' } },
            { name: 'tmp', emptyDir: { sizeLimit: ex.scratchSizeLimit } },
            ...(ex.configMap ? [{ name: 'config', configMap: { name: ex.configMap } }] : []),
          ],
        },
      },
    },
  };
}

/** The manifest `snapshot --json` printed (pretty JSON among JSON log lines), the last one that parses. */
export function manifestFromLog(text: string): Manifest | undefined {
  const lines = text.split('\n');
  for (let start = lines.length - 1; start >= 0; start--) {
    if (lines[start] !== '{') continue;
    const end = lines.indexOf('}', start);
    if (end < 0) continue;
    try {
      const parsed = manifestSchema.safeParse(JSON.parse(lines.slice(start, end + 1).join('\n')));
      if (parsed.success) return parsed.data;
    } catch {
      // Not the manifest; keep looking.
    }
  }
  return undefined;
}

/** The stage a failed `snapshot` named on its last error line (`error: upload: ...`). */
export function stageFromLog(text: string): SnapshotStage | undefined {
  const named = new RegExp(`^error: (${SNAPSHOT_STAGES.join('|')}): `, 'gm');
  const m = [...text.matchAll(named)].at(-1)?.[1];
  return SNAPSHOT_STAGES.find((s) => s === m);
}

export function finished(job: V1Job): 'Complete' | 'Failed' | undefined {
  const c = job.status?.conditions?.find((x) => (x.type === 'Complete' || x.type === 'Failed') && x.status === 'True');
  return c?.type as 'Complete' | 'Failed' | undefined;
}

export class JobGone extends Error {}

/**
 * Runs snapshots as Jobs (its Job reading, watching and pod-log methods are shared with the drill
 * Jobs, worker/drill-job.ts). Kubernetes API failures are SnapshotErrors of stage `kubernetes` (an RBAC
 * 403 is not an etcd connect failure); a Job that failed without naming a snapshot stage, or vanished,
 * is stage `job`.
 */
export class JobExecutor {
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private readonly retryDelayMs: number;
  private readonly watchTimeoutSeconds: number;

  constructor(private readonly options: JobExecutorOptions) {
    this.batch = options.kube.makeApiClient(BatchV1Api);
    this.core = options.kube.makeApiClient(CoreV1Api);
    this.retryDelayMs = options.retryDelayMs ?? 5_000;
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? 60;
  }

  private get namespace(): string {
    return this.options.namespace;
  }

  private where(name: string): string {
    return `Job ${this.namespace}/${name}`;
  }

  async readJob(name: string): Promise<V1Job | undefined> {
    try {
      return await this.batch.readNamespacedJob({ name, namespace: this.namespace });
    } catch (err) {
      if (apiFailure(err)?.code === 404) return undefined;
      throw new SnapshotError('kubernetes', `reading ${this.where(name)} failed: ${describeApiError(err)}`, {
        cause: err,
      });
    }
  }

  /** One watch request: the Job once finished, or undefined when the watch ended first. */
  private watchOnce(name: string, resourceVersion: string, signal: AbortSignal): Promise<V1Job | undefined> {
    return new Promise((resolve, reject) => {
      let settled = false;
      let controller: AbortController | undefined;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        controller?.abort();
        fn();
      };
      const onAbort = () => settle(() => reject(signal.reason as Error));
      signal.addEventListener('abort', onAbort, { once: true });
      new Watch(this.options.kube)
        .watch(
          `/apis/batch/v1/namespaces/${this.namespace}/jobs`,
          {
            fieldSelector: `metadata.name=${name}`,
            resourceVersion,
            timeoutSeconds: this.watchTimeoutSeconds,
            allowWatchBookmarks: true,
          },
          (phase, obj: V1Job) => {
            if (phase === 'DELETED')
              settle(() => reject(new JobGone(`${this.where(name)} was deleted while the worker waited for it`)));
            else if ((phase === 'ADDED' || phase === 'MODIFIED') && finished(obj)) settle(() => resolve(obj));
          },
          () => settle(() => resolve(undefined)),
        )
        .then(
          (c) => {
            controller = c;
            if (settled) c.abort();
          },
          () => settle(() => resolve(undefined)),
        );
    });
  }

  async waitFinished(name: string, signal: AbortSignal, log: Logger): Promise<V1Job> {
    for (;;) {
      signal.throwIfAborted();
      const job = await this.readJob(name);
      if (!job) throw new JobGone(`${this.where(name)} disappeared while the worker waited for it`);
      if (finished(job)) return job;
      const done = await this.watchOnce(name, job.metadata?.resourceVersion ?? '0', signal).catch((err: unknown) => {
        if (err instanceof JobGone) throw err;
        if (signal.aborted) throw err;
        log.debug({ err: messageOf(err) }, 'watching the snapshot Job broke off; reading it again');
        return undefined;
      });
      if (done) return done;
      await delay(Math.min(this.retryDelayMs, 1_000), signal);
    }
  }

  /** Waits for every other unfinished snapshot Job of this cluster (left by a crashed or stopped worker). */
  private async waitForOthers(name: string, signal: AbortSignal, log: Logger): Promise<void> {
    for (;;) {
      let list;
      try {
        list = await this.batch.listNamespacedJob({
          namespace: this.namespace,
          labelSelector: `${LABELS.component}=snapshot,${LABELS.cluster}=${this.options.config.cluster}`,
        });
      } catch (err) {
        throw new SnapshotError(
          'kubernetes',
          `listing snapshot Jobs in ${this.namespace} failed: ${describeApiError(err)}`,
          {
            cause: err,
          },
        );
      }
      const other = list.items.find((j) => j.metadata?.name !== name && !finished(j));
      if (!other?.metadata?.name) return;
      log.info(
        { job: other.metadata.name },
        'another snapshot Job of this cluster is still running; waiting for it first',
      );
      await this.waitFinished(other.metadata.name, signal, log).catch((err: unknown) => {
        if (!(err instanceof JobGone)) throw err;
      });
    }
  }

  /** Creates the Job, or adopts the one a previous run of the same queue job created. */
  private async createOrAdopt(name: string, run: SnapshotRun): Promise<V1Job> {
    for (let attempt = 0; ; attempt++) {
      const body = buildSnapshotJob(this.options.config, {
        name,
        namespace: this.namespace,
        jobId: run.jobId,
        cause: run.cause,
        nonce: randomBytes(6).toString('hex'),
      });
      try {
        const created = await this.batch.createNamespacedJob({ namespace: this.namespace, body });
        run.log.info({ job: name, namespace: this.namespace }, 'snapshot Job created');
        return created;
      } catch (err) {
        const f = apiFailure(err);
        if (f?.code !== 409)
          throw new SnapshotError('kubernetes', `creating ${this.where(name)} failed: ${describeApiError(err)}`, {
            cause: err,
          });
      }
      const existing = await this.readJob(name);
      if (!existing) continue; // Deleted meanwhile: create again.
      if (finished(existing) !== 'Failed' && existing.metadata?.deletionTimestamp === undefined) {
        run.log.info({ job: name }, 'adopting the snapshot Job of an earlier run of this queue job');
        return existing;
      }
      if (attempt >= 30)
        throw new SnapshotError(
          'kubernetes',
          `${this.where(name)} from a failed earlier attempt is not going away; delete it by hand`,
        );
      if (existing.metadata?.deletionTimestamp === undefined) {
        // A failed earlier attempt: the queue retries, so the Job runs anew.
        run.log.info({ job: name }, 'deleting the failed snapshot Job of an earlier attempt');
        await this.batch
          .deleteNamespacedJob({
            name,
            namespace: this.namespace,
            body: { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background' },
          })
          .catch((err: unknown) => {
            if (apiFailure(err)?.code !== 404)
              throw new SnapshotError('kubernetes', `deleting ${this.where(name)} failed: ${describeApiError(err)}`, {
                cause: err,
              });
          });
      } else {
        await delay(this.retryDelayMs, run.signal);
      }
    }
  }

  async podOf(job: V1Job): Promise<V1Pod | undefined> {
    const nonce = job.spec?.template.metadata?.labels?.[LABELS.run];
    if (!nonce) return undefined;
    const pods = await this.core.listNamespacedPod({
      namespace: this.namespace,
      labelSelector: `${LABELS.run}=${nonce}`,
    });
    return pods.items.sort((a, b) =>
      String(b.metadata?.creationTimestamp ?? '').localeCompare(String(a.metadata?.creationTimestamp ?? '')),
    )[0];
  }

  async podLog(pod: V1Pod | undefined, tailLines: number, container = CONTAINER): Promise<string> {
    if (!pod?.metadata?.name) return '';
    try {
      return await this.core.readNamespacedPodLog({
        name: pod.metadata.name,
        namespace: this.namespace,
        container,
        tailLines,
      });
    } catch {
      // A pod that never started has no log; the failure report says why from its status.
      return '';
    }
  }

  private async fromStore(manifest: Manifest): Promise<Manifest | undefined> {
    return readManifest(this.options.store, manifestKey(this.options.config.cluster, manifest.id)).catch(
      () => undefined,
    );
  }

  async run(run: SnapshotRun): Promise<Manifest> {
    const name = snapshotJobName(this.options.config.cluster, run.jobId);
    const log = run.log.child({ job: name });
    await this.waitForOthers(name, run.signal, log);
    await this.createOrAdopt(name, run);
    const job = await this.waitFinished(name, run.signal, log).catch((err: unknown) => {
      if (err instanceof JobGone) throw new SnapshotError('job', err.message);
      throw err;
    });
    const pod = await this.podOf(job).catch(() => undefined);
    if (finished(job) === 'Complete') {
      const printed = manifestFromLog(await this.podLog(pod, 1000));
      if (!printed)
        throw new SnapshotError(
          'publish',
          `${this.where(name)} completed but its pod log holds no manifest (was the log rotated away?); check the store with "etcd-autobackup list"`,
        );
      const stored = await this.fromStore(printed);
      if (!stored)
        throw new SnapshotError(
          'publish',
          `${this.where(name)} reported snapshot ${printed.id}, but its manifest is not in ${this.options.store.location}: do the Job and the worker use the same store?`,
        );
      log.info({ id: stored.id }, 'snapshot Job succeeded');
      return stored;
    }
    const tail = await this.podLog(pod, this.options.config.executor.logTailLines);
    const cond = job.status?.conditions?.find((c) => c.type === 'Failed');
    const why = [cond?.reason, cond?.message].filter(Boolean).join(': ') || 'failed';
    const message = `${this.where(name)} failed (${why})${describePod(pod)}${tail.trim() ? `; last log lines:\n${indent(tail)}` : ''}`;
    const stage = stageFromLog(tail);
    throw new SnapshotError(stage ?? 'job', message);
  }
}

export function createJobExecutor(options: JobExecutorOptions): (run: SnapshotRun) => Promise<Manifest> {
  const executor = new JobExecutor(options);
  return (run) => executor.run(run);
}

/** What a pod's status says about why it failed, e.g. `; pod x: exit code 1` or `; pod x: Unschedulable: ...`. */
function describePod(pod: V1Pod | undefined): string {
  if (!pod) return '; no pod was created';
  const name = pod.metadata?.name ?? '?';
  const state = pod.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state;
  if (state?.terminated)
    return `; pod ${name}: exit code ${state.terminated.exitCode}${state.terminated.reason ? ` (${state.terminated.reason})` : ''}`;
  if (state?.waiting)
    return `; pod ${name}: ${state.waiting.reason ?? 'waiting'}${state.waiting.message ? `: ${state.waiting.message}` : ''}`;
  const unscheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (unscheduled)
    return `; pod ${name}: ${unscheduled.reason ?? 'not scheduled'}${unscheduled.message ? `: ${unscheduled.message}` : ''}`;
  return `; pod ${name}: ${pod.status?.phase ?? 'unknown phase'}`;
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The executor for a worker in a pod: its service account, its namespace unless executor.namespace says otherwise. */
export function jobExecutorFor(config: JobExecutorConfig, store: Store): (run: SnapshotRun) => Promise<Manifest> {
  const kube = defaultKubeConfig();
  return createJobExecutor({ config, store, kube, namespace: resolveNamespace(kube, config.executor.namespace) });
}
