/**
 * The chart's NetworkPolicies, rendered by the real helm and evaluated by the NetworkPolicy API's
 * rules (test/support/network-policy.ts) against the pods the same render produces: who reaches
 * the webhook port, Redis and the worker's metrics.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { byKind, schemaProblems, workloads } from '../support/chart-checks.js';
import { CHART, chartTools, helm, NAMESPACE, RELEASE, renderChart, type K8sObject } from '../support/helm.js';
import { allowed, ingressPolicies, type Destination, type Source } from '../support/network-policy.js';

const FULLNAME = `${RELEASE}-etcd-autobackup`;
const JOB_VALUES = join(CHART, 'ci/job-executor-values.yaml');
const NODE_CIDR = '10.0.0.0/24';
/** The apiserver: host network of a control-plane node, or a managed control plane outside the cluster. */
const APISERVER_ON_NODE: Source = { ip: '10.0.0.11' };
const APISERVER_OUTSIDE: Source = { ip: '203.0.113.7' };
const STRANGER: Source = { pod: { namespace: 'default', labels: { app: 'curl' }, ip: '10.244.3.9' } };
const PROMETHEUS: Source = {
  pod: { namespace: 'monitoring', labels: { 'app.kubernetes.io/name': 'prometheus' }, ip: '10.244.4.2' },
};
const SCRAPERS = [
  'networkPolicy.metrics.from[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring',
];

before(async () => {
  await chartTools();
});

/** The rendered pod of a component, as a destination and as a source (a host-network pod has its node's IP). */
function pod(objects: readonly K8sObject[], component: string, ip: string): { dest: Destination; source: Source } {
  const name = component === 'redis' ? `${FULLNAME}-redis` : `${FULLNAME}-${component}`;
  const w = workloads(objects).find((x) => x.object.metadata.name === name);
  assert.ok(w, `${name} is not rendered`);
  const hostNetwork = (w.pod as { hostNetwork?: boolean }).hostNetwork === true;
  return {
    dest: { namespace: NAMESPACE, labels: w.labels, hostNetwork },
    source: hostNetwork ? { ip: '10.0.0.12' } : { pod: { namespace: NAMESPACE, labels: w.labels, ip } },
  };
}

function containerPort(objects: readonly K8sObject[], component: string): number {
  const w = workloads(objects).find((x) => x.object.metadata.name === `${FULLNAME}-${component}`);
  const port = w?.pod.containers[0]?.ports?.[0]?.containerPort;
  assert.ok(port, `${component} has no container port`);
  return port;
}

describe('chart: NetworkPolicies', () => {
  test('defaults: the webhook port is open to the apiserver wherever it calls from, and nothing else of the webhook is', async () => {
    const objects = await renderChart();
    assert.deepEqual(schemaProblems(byKind(objects, 'NetworkPolicy')), []);
    const webhook = pod(objects, 'webhook', '10.244.1.5');
    assert.equal(ingressPolicies(objects, webhook.dest).length, 1, 'a policy selects the rendered webhook pods');
    const port = containerPort(objects, 'webhook');
    for (const source of [APISERVER_ON_NODE, APISERVER_OUTSIDE, STRANGER])
      assert.ok(allowed(objects, source, webhook.dest, port), `${JSON.stringify(source)} reaches the webhook port`);
    assert.ok(!allowed(objects, STRANGER, webhook.dest, port + 1), 'other ports of the webhook pods are closed');

    // The worker is on the host network (policies do not apply), so Redis gets no policy that would cut it off.
    const worker = pod(objects, 'worker', '');
    assert.equal(worker.dest.hostNetwork, true);
    const redis = pod(objects, 'redis', '10.244.2.8');
    assert.ok(allowed(objects, worker.source, redis.dest, 6379), 'the host-network worker reaches Redis');
    const notes = await helm(['install', RELEASE, CHART, '--namespace', NAMESPACE, '--dry-run=client']);
    assert.match(notes.stdout, /Redis has none: the worker runs in the host\s+network[^]*Set networkPolicy\.nodeCIDRs/);
  });

  test("with nodeCIDRs: Redis only from this release's pods and the worker's nodes", async () => {
    const objects = await renderChart([], [`networkPolicy.nodeCIDRs[0]=${NODE_CIDR}`]);
    assert.deepEqual(schemaProblems(byKind(objects, 'NetworkPolicy')), []);
    const redis = pod(objects, 'redis', '10.244.2.8');
    const webhook = pod(objects, 'webhook', '10.244.1.5');
    const worker = pod(objects, 'worker', '');
    assert.ok(allowed(objects, webhook.source, redis.dest, 6379), 'the webhook reaches Redis');
    assert.ok(allowed(objects, worker.source, redis.dest, 6379), 'the host-network worker reaches Redis from its node');
    const otherRelease: Source = {
      pod: {
        namespace: NAMESPACE,
        labels: { ...webhook.dest.labels, 'app.kubernetes.io/instance': 'other' },
        ip: '10.244.1.6',
      },
    };
    const sameNamespace: Source = { pod: { namespace: NAMESPACE, labels: { app: 'debug' }, ip: '10.244.1.7' } };
    for (const source of [STRANGER, otherRelease, sameNamespace, APISERVER_OUTSIDE, { ip: '10.0.1.5' }])
      assert.ok(!allowed(objects, source, redis.dest, 6379), `${JSON.stringify(source)} is kept off Redis`);
    assert.ok(!allowed(objects, webhook.source, redis.dest, 6380), 'only the Redis port');
  });

  test('worker off the host network (job executor): Redis from our pods only, metrics from the configured scrapers only', async () => {
    const closed = await renderChart([JOB_VALUES]);
    const worker = pod(closed, 'worker', '10.244.5.5');
    assert.equal(worker.dest.hostNetwork, false);
    const metricsPort = containerPort(closed, 'worker');
    assert.ok(!allowed(closed, PROMETHEUS, worker.dest, metricsPort), 'no scrapers configured: nobody');
    const redis = pod(closed, 'redis', '10.244.2.8');
    assert.ok(allowed(closed, worker.source, redis.dest, 6379), 'the worker pod reaches Redis');
    assert.ok(!allowed(closed, STRANGER, redis.dest, 6379));

    const open = await renderChart([JOB_VALUES], SCRAPERS);
    assert.deepEqual(schemaProblems(byKind(open, 'NetworkPolicy')), []);
    assert.ok(allowed(open, PROMETHEUS, worker.dest, metricsPort), 'Prometheus in monitoring scrapes the worker');
    assert.ok(!allowed(open, STRANGER, worker.dest, metricsPort), 'a pod elsewhere does not');
  });

  test('networkPolicy.enabled=false renders none; webhook.from narrows the webhook port', async () => {
    assert.equal(byKind(await renderChart([], ['networkPolicy.enabled=false']), 'NetworkPolicy').length, 0);
    const objects = await renderChart([], ['networkPolicy.webhook.from[0].ipBlock.cidr=10.0.0.0/24']);
    const webhook = pod(objects, 'webhook', '10.244.1.5');
    const port = containerPort(objects, 'webhook');
    assert.ok(allowed(objects, APISERVER_ON_NODE, webhook.dest, port));
    assert.ok(!allowed(objects, APISERVER_OUTSIDE, webhook.dest, port));
  });
});
