/**
 * The conventions of well-kept charts, through the real helm: every namespaced object names its
 * namespace; both pods take priorityClassName, topologySpreadConstraints, extraEnv, extraVolumes and
 * extraVolumeMounts; every pod (and the snapshot Jobs) pulls with imagePullSecrets; images pin by digest; the chart
 * carries its own icon.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { workloads, type Container, type PodSpec } from '../support/chart-checks.js';
import { CHART, chartTools, helm, NAMESPACE, renderChart, type K8sObject } from '../support/helm.js';
import { tempDir } from '../support/tmp.js';

const CLUSTER_SCOPED = new Set(['ClusterRole', 'ClusterRoleBinding', 'ValidatingWebhookConfiguration']);
const DIGEST = `sha256:${'ab'.repeat(32)}`;
const REDIS_DIGEST = `sha256:${'cd'.repeat(32)}`;

before(async () => {
  await chartTools();
});

test('every namespaced object has metadata.namespace, with every optional object on', async () => {
  const sets = [
    [],
    ['prometheusRule.enabled=true', 'grafanaDashboard.enabled=true', 'metrics.serviceMonitor.enabled=true'],
  ];
  const files = [[], [join(CHART, 'ci/job-executor-values.yaml')]];
  for (const set of sets) {
    for (const f of files) {
      const objects = await renderChart(f, set);
      for (const o of objects) {
        const where = `${o.kind} ${o.metadata.name} (${[...set, ...f].join(' ') || 'defaults'})`;
        if (CLUSTER_SCOPED.has(o.kind)) assert.equal(o.metadata.namespace, undefined, `${where} is cluster-scoped`);
        else assert.equal(o.metadata.namespace, NAMESPACE, `${where} has no metadata.namespace`);
      }
    }
  }
});

/** Every pod spec the chart renders: Deployments, the Redis StatefulSet, the `helm test` Pod. */
function podSpecs(objects: readonly K8sObject[]): { name: string; pod: PodSpec }[] {
  return [
    ...workloads(objects).map((w) => ({ name: w.object.metadata.name, pod: w.pod })),
    ...objects.filter((o) => o.kind === 'Pod').map((o) => ({ name: o.metadata.name, pod: o.spec as PodSpec })),
  ];
}

test('priorityClassName, topologySpreadConstraints, extraEnv/extraVolumes/extraVolumeMounts on both pods; pull secrets and digests everywhere', async () => {
  const spread = [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway' }];
  const pod = (component: string) => ({
    priorityClassName: `${component}-critical`,
    topologySpreadConstraints: spread,
    extraEnv: [{ name: 'HTTPS_PROXY', value: `http://proxy.${component}:3128` }],
    extraVolumes: [{ name: `extra-${component}`, emptyDir: {} }],
    extraVolumeMounts: [{ name: `extra-${component}`, mountPath: `/extra/${component}` }],
  });
  const values = {
    image: { repository: 'registry.local/etcd-autobackup', tag: 'ignored', digest: DIGEST },
    imagePullSecrets: [{ name: 'regcred' }],
    redis: { image: { digest: REDIS_DIGEST } },
    webhook: pod('webhook'),
    worker: pod('worker'),
  };
  const dir = await tempDir('conventions');
  try {
    const file = join(dir.path, 'values.yaml');
    await writeFile(file, stringify(values));
    const objects = await renderChart([file]);
    for (const component of ['webhook', 'worker']) {
      const w = workloads(objects).find((x) => x.object.metadata.name.endsWith(`-${component}`));
      assert.ok(w, `no ${component} Deployment`);
      const spec = w.pod as PodSpec & { priorityClassName?: string; topologySpreadConstraints?: unknown };
      assert.equal(spec.priorityClassName, `${component}-critical`);
      assert.deepEqual(spec.topologySpreadConstraints, spread);
      const c = w.pod.containers.find((x) => x.name === component) as Container;
      assert.ok(
        c.env?.some((e) => e.name === 'HTTPS_PROXY' && e.value === `http://proxy.${component}:3128`),
        `${component}: extraEnv is not in the container's env`,
      );
      assert.ok(
        c.env?.some((e) => e.name === 'ETCD_AUTOBACKUP_CONFIG'),
        `${component}: extraEnv replaced the chart's env`,
      );
      assert.ok(
        w.pod.volumes?.some((v) => v.name === `extra-${component}`),
        `${component}: extraVolumes missing`,
      );
      assert.ok(
        c.volumeMounts?.some((m) => m.name === `extra-${component}` && m.mountPath === `/extra/${component}`),
        `${component}: extraVolumeMounts missing`,
      );
    }
    const pods = podSpecs(objects);
    assert.ok(pods.length >= 4, `pods: ${pods.map((p) => p.name).join(', ')}`);
    for (const { name, pod: spec } of pods) {
      assert.deepEqual(
        (spec as PodSpec & { imagePullSecrets?: unknown }).imagePullSecrets,
        [{ name: 'regcred' }],
        `${name}: no imagePullSecrets`,
      );
      for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
        const image = (c as Container & { image: string }).image;
        const want = name.endsWith('-redis') ? `redis@${REDIS_DIGEST}` : `registry.local/etcd-autobackup@${DIGEST}`;
        assert.equal(image, want, `${name}/${c.name}: image`);
      }
    }

    // The snapshot Jobs of the job executor pull the same image the same way.
    const jobValues = join(dir.path, 'job.yaml');
    await writeFile(
      jobValues,
      stringify({ ...values, config: { executor: { mode: 'job' }, store: { url: 's3://b/p' } } }),
    );
    const cm = (await renderChart([jobValues])).find(
      (o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('autobackup'),
    );
    const config = parse((cm?.data as Record<string, string>)['config.yaml'] as string) as {
      executor: { image: string; imagePullSecrets: string[] };
    };
    assert.equal(config.executor.image, `registry.local/etcd-autobackup@${DIGEST}`);
    assert.deepEqual(config.executor.imagePullSecrets, ['regcred']);
  } finally {
    await dir.remove();
  }
});

test('Chart.yaml carries the icon itself (no fetch from an air-gapped cluster), equal to assets/icon.svg', async () => {
  const shown = await helm(['show', 'chart', CHART]);
  assert.equal(shown.code, 0, shown.stderr);
  const chart = parse(shown.stdout) as { icon?: string };
  const prefix = 'data:image/svg+xml;base64,';
  const icon = chart.icon ?? '';
  assert.ok(icon.startsWith(prefix), `icon is ${icon.slice(0, 60)}`);
  const svg = await readFile(join(CHART, 'assets/icon.svg'), 'utf8');
  assert.equal(Buffer.from(icon.slice(prefix.length), 'base64').toString('utf8'), svg);
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  // helm lint reports a missing or malformed icon ("icon is recommended", "invalid icon URL").
  const lint = await helm(['lint', CHART, '--namespace', NAMESPACE]);
  assert.equal(lint.code, 0, lint.stdout + lint.stderr);
  assert.doesNotMatch(lint.stdout, /icon/i);
});
