/**
 * The Job executor against the fake Kubernetes API, with a stand-in kubelet that runs each Job's
 * container as the real CLI (`snapshot --json` with the Job's env) against a real etcd and file
 * store: the Job spec has to be right for the snapshot to happen at all.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { configSchema, type ConfigInput } from '../../core/config/index.js';
import { SnapshotError } from '../../core/errors.js';
import {
  buildSnapshotJob,
  createJobExecutor,
  LABELS,
  manifestFromLog,
  snapshotJobName,
} from '../../worker/job-executor.js';
import type { Manifest } from '../../worker/manifest.js';
import { openStore } from '../../worker/stores/open.js';
import type { Store } from '../../worker/stores/store.js';
import { schemaProblems } from '../support/chart-checks.js';
import { runCli } from '../support/cli.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { FakeKubeApi, type KubeObject, type PolicyRule } from '../support/kube-api.js';
import { CHART, RELEASE, renderChart, type K8sObject } from '../support/helm.js';
import { freePort, waitFor } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

const NS = 'backup';
const CLUSTER = 'prod-1';
const SECRET_VALUE = 'do-not-copy-me-0123456789';
const log = pino({ level: 'silent' });

interface ContainerSpec {
  args: string[];
  env: { name: string; value: string }[];
}

let api: FakeKubeApi;
let etcd: EtcdServer;
let dir: { path: string; remove: () => Promise<void> };
let store: Store;
const held = new Map<string, () => Promise<void>>();
let holdJobs = false;
const cliRuns: string[] = [];

function configFor(over: ConfigInput = {}): ReturnType<typeof configSchema.parse> {
  return configSchema.parse({
    cluster: CLUSTER,
    etcd: { endpoints: [etcd.endpoint] },
    store: { url: `file://${dir.path}`, s3: { secretAccessKey: SECRET_VALUE } },
    executor: { mode: 'job', image: 'registry.local/etcd-autobackup:0.1.0', envFromSecret: 'eab-store' },
    ...over,
  });
}

/** The kubelet and Job controller: a pod for the Job, the container run as the CLI, the status written back. */
function kubelet(job: KubeObject): void {
  const name = job.metadata.name;
  const spec = job.spec as {
    template: { metadata: { labels: Record<string, string> }; spec: { containers: ContainerSpec[] } };
  };
  const podName = `${name}-${randomBytes(3).toString('hex')}`;
  const run = async () => {
    api.put('pods', {
      metadata: {
        name: podName,
        namespace: NS,
        labels: { ...spec.template.metadata.labels, 'batch.kubernetes.io/job-name': name },
      },
      spec: spec.template.spec,
      status: { phase: 'Running' },
    });
    api.modify('jobs', NS, name, (j) => {
      j.status = { active: 1, startTime: new Date().toISOString() };
    });
    const container = spec.template.spec.containers[0] as ContainerSpec;
    const env = Object.fromEntries(container.env.map((e) => [e.name, e.value]));
    cliRuns.push(name);
    const r = await runCli(container.args, { env, timeoutMs: 60_000 });
    const ok = r.code === 0;
    api.setLog(NS, podName, r.stderr + r.stdout);
    api.modify('pods', NS, podName, (p) => {
      p.status = {
        phase: ok ? 'Succeeded' : 'Failed',
        containerStatuses: [{ name: 'snapshot', state: { terminated: { exitCode: r.code ?? 137 } } }],
      };
    });
    api.modify('jobs', NS, name, (j) => {
      j.status = ok
        ? { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] }
        : {
            failed: 1,
            conditions: [
              {
                type: 'Failed',
                status: 'True',
                reason: 'BackoffLimitExceeded',
                message: 'Job has reached the specified backoff limit',
              },
            ],
          };
    });
  };
  if (holdJobs) held.set(name, run);
  else void run();
}

/** The rules of the worker's Role as the chart renders it with the job executor on. */
async function chartWorkerRole(): Promise<PolicyRule[]> {
  const objects = await renderChart([join(CHART, 'ci/job-executor-values.yaml')]);
  const role = objects.find((o) => o.kind === 'Role' && o.metadata.name === `${RELEASE}-etcd-autobackup-worker`);
  assert.ok(role, 'the chart renders no worker Role');
  return (role as K8sObject & { rules: PolicyRule[] }).rules;
}

before(async () => {
  let rules: PolicyRule[];
  [api, etcd, dir, rules] = await Promise.all([
    FakeKubeApi.start(),
    startEtcd(),
    tempDir('job-exec'),
    chartWorkerRole(),
  ]);
  // The executor may call only what the chart's Role grants: a call beyond it is a 403 and a problem.
  api.rbac = rules;
  await etcd.client.put('/registry/configmaps/default/x').value('y');
  store = await openStore(configSchema.parse({ store: { url: `file://${dir.path}` } }));
  api.onCreate('jobs', kubelet);
});
after(async () => {
  await store.close();
  await Promise.all([api.close(), etcd.stop(), dir.remove()]);
});

function executor(over: ConfigInput = {}) {
  return createJobExecutor({
    config: configFor(over),
    store,
    kube: api.kubeConfig(NS),
    namespace: NS,
    retryDelayMs: 50,
    watchTimeoutSeconds: 30,
  });
}

function run(
  jobId: string,
  over: ConfigInput = {},
  cause: Manifest['cause'] = { source: 'audit', counts: { audit: 3 }, window: 'w-1' },
) {
  return executor(over)({ cause, jobId, log, signal: new AbortController().signal });
}

describe('the Job spec', () => {
  test('control-plane placement, host network, read-only etcd certs, the snapshot command, no secrets', () => {
    const job = buildSnapshotJob(configFor(), {
      name: 'n',
      namespace: NS,
      jobId: 'j',
      cause: { source: 'manual' },
      nonce: 'abc',
    });
    const pod = job.spec?.template.spec;
    assert.ok(pod);
    assert.equal(pod.hostNetwork, true);
    assert.deepEqual(pod.nodeSelector, { 'node-role.kubernetes.io/control-plane': '' });
    assert.deepEqual(pod.tolerations, [
      { key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' },
    ]);
    assert.equal(job.spec?.ttlSecondsAfterFinished, 3600);
    assert.equal(job.spec?.backoffLimit, 0);
    assert.ok(!JSON.stringify(job).includes(SECRET_VALUE), 'secrets come from envFrom, never the spec');
    assert.deepEqual(pod.containers[0]?.envFrom, [{ secretRef: { name: 'eab-store' } }]);
  });

  test('hardened pod: RuntimeDefault seccomp, requests and limits, read-only root with a bounded /tmp, a valid Job', () => {
    const input = { name: 'n', namespace: NS, jobId: 'j', cause: { source: 'manual' as const }, nonce: 'abc' };
    const job = buildSnapshotJob(configFor(), input);
    assert.deepEqual(schemaProblems([job as unknown as K8sObject]), [], 'a valid batch/v1 Job');
    const pod = job.spec?.template.spec;
    assert.deepEqual(pod?.securityContext?.seccompProfile, { type: 'RuntimeDefault' });
    const c = pod?.containers[0];
    assert.deepEqual(c?.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
    assert.equal(c?.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(c?.securityContext?.allowPrivilegeEscalation, false);
    assert.deepEqual(c?.securityContext?.capabilities, { drop: ['ALL'] });
    // The only writable places are emptyDirs of bounded size; the etcd certs are read-only.
    for (const m of c?.volumeMounts ?? []) {
      const v = pod?.volumes?.find((x) => x.name === m.name);
      if (m.readOnly) continue;
      assert.ok(v?.emptyDir?.sizeLimit, `${m.mountPath} is writable, so it is a bounded emptyDir`);
    }
    assert.equal(pod?.volumes?.find((v) => v.name === 'tmp')?.emptyDir?.sizeLimit, '256Mi');

    const custom = buildSnapshotJob(
      configFor({
        executor: {
          mode: 'job',
          image: 'registry.local/etcd-autobackup:0.1.0',
          resources: { limits: { memory: '1Gi', cpu: '2' } },
          scratchSizeLimit: '1Gi',
        },
      }),
      input,
    );
    assert.deepEqual(custom.spec?.template.spec?.containers[0]?.resources, { limits: { memory: '1Gi', cpu: '2' } });
    assert.equal(custom.spec?.template.spec?.volumes?.find((v) => v.name === 'tmp')?.emptyDir?.sizeLimit, '1Gi');
  });

  test('a private registry: the Job pods pull with executor.imagePullSecrets, and none are set by default', () => {
    const input = { name: 'n', namespace: NS, jobId: 'j', cause: { source: 'manual' as const }, nonce: 'abc' };
    assert.equal(buildSnapshotJob(configFor(), input).spec?.template.spec?.imagePullSecrets, undefined);
    const executor = { mode: 'job', image: 'r/e:1', envFromSecret: 'eab-store', imagePullSecrets: ['regcred'] };
    const job = buildSnapshotJob(configFor({ executor } as ConfigInput), input);
    assert.deepEqual(job.spec?.template.spec?.imagePullSecrets, [{ name: 'regcred' }]);
  });

  test('the Job name is stable per queue job and fits a label value', () => {
    const a = snapshotJobName('a-very-long-cluster-name-that-goes-on-and-on-and-on-for-ever', 'repeat:abc:123');
    assert.equal(a, snapshotJobName('a-very-long-cluster-name-that-goes-on-and-on-and-on-for-ever', 'repeat:abc:123'));
    assert.notEqual(
      a,
      snapshotJobName('a-very-long-cluster-name-that-goes-on-and-on-and-on-for-ever', 'repeat:abc:124'),
    );
    assert.ok(a.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(a), a);
  });

  test('the manifest is found among JSON log lines', () => {
    assert.equal(manifestFromLog('{"level":30}\nnot json\n'), undefined);
  });
});

describe('running snapshots as Jobs', () => {
  test('a Job runs the real snapshot command; the manifest comes back from the store with the queue cause', async () => {
    const before = api.requests.length;
    const cause = {
      source: 'audit' as const,
      counts: { audit: 3 },
      window: 'w-1',
      samples: ['apps/deployments shop/web'],
    };
    const manifest = await run('job-ok', {}, cause);
    assert.deepEqual(manifest.cause, cause, 'the cause travelled through the Job env into the manifest');
    assert.equal(manifest.cluster, CLUSTER);
    assert.ok(manifest.etcd.revision > 0);

    const reqs = api.requests.slice(before);
    const create = reqs.find((r) => r.verb === 'create');
    assert.equal(create?.path, `/apis/batch/v1/namespaces/${NS}/jobs`);
    const body = create?.body as KubeObject;
    const spec = body.spec as {
      template: { metadata: { labels: Record<string, string> }; spec: Record<string, unknown> };
    };
    const pod = spec.template.spec as {
      hostNetwork: boolean;
      volumes: unknown[];
      containers: (ContainerSpec & { image: string; volumeMounts: unknown[] })[];
    };
    assert.equal(body.metadata.name, snapshotJobName(CLUSTER, 'job-ok'));
    assert.equal(body.metadata.labels?.[LABELS.cluster], CLUSTER);
    assert.equal(pod.hostNetwork, true);
    assert.deepEqual(pod.containers[0]?.args, ['snapshot', '--json']);
    assert.equal(pod.containers[0]?.image, 'registry.local/etcd-autobackup:0.1.0');
    assert.ok(
      pod.volumes.some((v) =>
        isDeepStrictEqual(v, { name: 'etcd-certs', hostPath: { path: '/etc/kubernetes/pki/etcd', type: 'Directory' } }),
      ),
      'etcd certs from the host',
    );
    assert.ok(
      pod.containers[0]?.volumeMounts.some((m) =>
        isDeepStrictEqual(m, { name: 'etcd-certs', mountPath: '/etc/kubernetes/pki/etcd', readOnly: true }),
      ),
      'mounted read-only',
    );
    const tolerations = (spec.template.spec as { tolerations: unknown }).tolerations;
    assert.deepEqual(tolerations, [
      { key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' },
    ]);
    assert.deepEqual((spec.template.spec as { nodeSelector: unknown }).nodeSelector, {
      'node-role.kubernetes.io/control-plane': '',
    });
    assert.equal((body.spec as { ttlSecondsAfterFinished: number }).ttlSecondsAfterFinished, 3600);
    assert.ok(!JSON.stringify(body).includes(SECRET_VALUE));
    // What went over the wire keeps the hardening (the client serializes typed fields only).
    assert.deepEqual((spec.template.spec as { securityContext: unknown }).securityContext, {
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const sent = pod.containers[0] as unknown as {
      resources: unknown;
      securityContext: { readOnlyRootFilesystem: boolean };
    };
    assert.deepEqual(sent.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
    assert.equal(sent.securityContext.readOnlyRootFilesystem, true);

    assert.ok(
      reqs.some((r) => r.verb === 'watch' && r.query.get('fieldSelector') === `metadata.name=${body.metadata.name}`),
      'waited with a watch',
    );
    const podList = reqs.find((r) => r.verb === 'list' && r.resource === 'pods');
    assert.equal(
      podList?.query.get('labelSelector'),
      `${LABELS.run}=${spec.template.metadata.labels[LABELS.run] ?? ''}`,
    );
    const logReq = reqs.find((r) => r.verb === 'log');
    assert.equal(logReq?.query.get('container'), 'snapshot');
    assert.deepEqual(api.problems, []);
  });

  test('a failing snapshot reports the stage and the pod log tail', async () => {
    const closed = await freePort();
    await assert.rejects(
      () => run('job-fail', { etcd: { endpoints: [`http://127.0.0.1:${closed}`], dialTimeout: '1s' } }),
      (err: unknown) => {
        assert.ok(err instanceof SnapshotError, String(err));
        assert.equal(err.stage, 'connect');
        assert.match(err.message, /BackoffLimitExceeded/);
        assert.match(err.message, /exit code 1/);
        assert.match(err.message, /last log lines:\n {2}.*error: connect:/s);
        return true;
      },
    );
    assert.deepEqual(api.problems, []);
  });

  test('a Kubernetes API refusal (RBAC 403) is stage kubernetes, not an etcd stage, and names the call', async () => {
    const granted = api.rbac;
    api.rbac = (granted ?? []).filter((r) => !r.resources.includes('jobs'));
    try {
      await assert.rejects(
        () => run('job-forbidden'),
        (err: unknown) => {
          assert.ok(err instanceof SnapshotError, String(err));
          assert.equal(err.stage, 'kubernetes');
          assert.match(err.message, /listing snapshot Jobs in backup failed/);
          assert.match(err.message, /403|forbidden/i);
          return true;
        },
      );
    } finally {
      api.rbac = granted;
      api.problems.length = 0;
    }
  });

  test('a second run of the same queue job adopts its Job (409 AlreadyExists) instead of starting another', async () => {
    holdJobs = true;
    try {
      const name = snapshotJobName(CLUSTER, 'job-dup');
      const runsBefore = cliRuns.length;
      const first = run('job-dup');
      await waitFor('the first Job', () => Promise.resolve(held.has(name) || undefined));
      const creates = api.requestsOf('create', 'jobs').length;
      const second = run('job-dup');
      await waitFor('the second run to adopt', () =>
        Promise.resolve(api.requestsOf('create', 'jobs').length > creates || undefined),
      );
      await held.get(name)?.();
      const [a, b] = await Promise.all([first, second]);
      assert.equal(a.id, b.id);
      assert.equal(cliRuns.length - runsBefore, 1, 'one snapshot ran');
      assert.equal(api.list('jobs', NS).filter((j) => j.metadata.name === name).length, 1);
    } finally {
      holdJobs = false;
      held.clear();
    }
    assert.deepEqual(api.problems, []);
  });

  test('a failed Job of an earlier attempt is deleted and run anew', async () => {
    const name = snapshotJobName(CLUSTER, 'job-retry');
    api.put('jobs', {
      metadata: { name, namespace: NS, labels: { [LABELS.cluster]: CLUSTER, [LABELS.component]: 'snapshot' } },
      spec: { template: { metadata: { labels: { [LABELS.run]: 'old' } }, spec: {} } },
      status: { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded' }] },
    });
    const deletes = api.requestsOf('delete', 'jobs').length;
    const manifest = await run('job-retry');
    assert.ok(manifest.id);
    const del = api.requestsOf('delete', 'jobs').slice(deletes);
    assert.equal(del.length, 1);
    assert.equal((del[0]?.body as { propagationPolicy?: string }).propagationPolicy, 'Background');
    assert.deepEqual(api.problems, []);
  });

  test("an unfinished snapshot Job of the cluster (a crashed worker's) is waited for before a new one starts", async () => {
    api.put('jobs', {
      metadata: {
        name: 'etcd-snapshot-orphan',
        namespace: NS,
        labels: { [LABELS.cluster]: CLUSTER, [LABELS.component]: 'snapshot' },
      },
      spec: { template: { metadata: { labels: { [LABELS.run]: 'orphan' } }, spec: {} } },
      status: { active: 1 },
    });
    const creates = api.requestsOf('create', 'jobs').length;
    const watches = api.requestsOf('watch', 'jobs').length;
    const pending = run('job-after-orphan');
    await waitFor('a watch on the orphan', () =>
      Promise.resolve(
        api
          .requestsOf('watch', 'jobs')
          .slice(watches)
          .some((r) => r.query.get('fieldSelector') === 'metadata.name=etcd-snapshot-orphan') || undefined,
      ),
    );
    assert.equal(api.requestsOf('create', 'jobs').length, creates, 'no new Job while the orphan runs');
    api.modify('jobs', NS, 'etcd-snapshot-orphan', (j) => {
      j.status = { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] };
    });
    const manifest = await pending;
    assert.ok(manifest.id);
    assert.equal(api.requestsOf('create', 'jobs').length, creates + 1);
    assert.deepEqual(api.problems, []);
  });
});
