import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics } from '../../core/metrics.js';
import { createQueueRecorder } from '../../core/queue/index.js';
import { drillSchema } from '../../core/config/schema.js';
import { drillAfterSnapshot } from '../../worker/drill-hook.js';
import { KubeEventNotifier, MAX_NOTE } from '../../worker/notify/kube-events.js';
import { startWorkerPool } from '../../worker/pool.js';
import { fillEtcd } from '../support/etcd.js';
import { renderChart, RELEASE, NAMESPACE, type K8sObject } from '../support/helm.js';
import { FakeKubeApi, type KubeObject, type PolicyRule } from '../support/kube-api.js';
import { waitFor } from '../support/ports.js';
import { GatedStore, waitIdle, waitManifests, withStack } from '../support/queue-stack.js';
import { tempDir } from '../support/tmp.js';

let api: FakeKubeApi;
let chart: K8sObject[];
let rules: PolicyRule[];
const DEPLOYMENT = `${RELEASE}-etcd-autobackup-worker`;

before(async () => {
  [api, chart] = await Promise.all([FakeKubeApi.start(), renderChart()]);
  const role = chart.find((o) => o.kind === 'Role' && o.metadata.name === DEPLOYMENT);
  assert.ok(role, 'the chart renders a worker Role');
  rules = (role as K8sObject & { rules: PolicyRule[] }).rules;
  // Only what the chart's Role grants: anything beyond is a 403 and a recorded problem.
  api.rbac = rules;
});

after(async () => {
  await api?.close();
});

function eventsAbout(name: string): KubeObject[] {
  return api
    .list('events', NAMESPACE)
    .filter((e) => (e.regarding as { name?: string } | undefined)?.name === name)
    .sort((a, b) => String(a.eventTime).localeCompare(String(b.eventTime)));
}

test('the chart config turns Events on about the worker Deployment, and its Role lets the worker read that Deployment', () => {
  const config = chart.find((o) => o.kind === 'ConfigMap' && o.metadata.name === `${RELEASE}-etcd-autobackup`) as
    (K8sObject & { data: Record<string, string> }) | undefined;
  assert.match(
    config?.data['config.yaml'] ?? '',
    new RegExp(`events:\\n\\s+deployment: ${DEPLOYMENT}\\n\\s+enabled: true`),
  );
  const worker = chart.find((o) => o.kind === 'Deployment' && o.metadata.name === DEPLOYMENT) as
    (K8sObject & { spec: { template: { spec: { automountServiceAccountToken?: boolean } } } }) | undefined;
  assert.equal(
    worker?.spec.template.spec.automountServiceAccountToken,
    true,
    'the worker gets its token to create Events',
  );
});

test('Events per published snapshot, failed attempt and drill, about the worker Deployment with its uid', async () => {
  const deployment = api.put('deployments', { metadata: { name: DEPLOYMENT, namespace: NAMESPACE } });
  await withStack(async (stack, cleanup) => {
    await fillEtcd(stack.etcd.client, 20, 16, '/registry/pods/ns/');
    const scratch = await tempDir('events-drill');
    cleanup(scratch.remove);
    const config = {
      ...stack.config({ attempts: 2, backoff: 100 }),
      drill: drillSchema.parse({ afterSnapshot: 1, scratchDir: scratch.path, freeSpaceMargin: 0 }),
    };
    const metrics = createMetrics({ defaultMetrics: false });
    const notifier = new KubeEventNotifier({
      kube: api.kubeConfig(NAMESPACE),
      namespace: NAMESPACE,
      deployment: DEPLOYMENT,
      log: stack.log,
      onFailure: (reason) => metrics.notificationFailures.inc({ channel: 'events', reason }),
    });
    const store = new GatedStore(stack.store);
    store.failNext = 1;
    const pool = await startWorkerPool({
      config,
      store,
      log: stack.log,
      notifier,
      afterSnapshot: drillAfterSnapshot({ config, store: stack.store, notifier }),
    });
    cleanup(() => pool.close());
    const recorder = createQueueRecorder({ config });
    cleanup(() => recorder.close());
    await recorder.enqueueNow();
    const [manifest] = await waitManifests(stack, 1);
    await waitIdle(recorder.queue);
    await waitFor('three Events', () => Promise.resolve(eventsAbout(DEPLOYMENT).length >= 3));
    await notifier.settle();
    assert.ok(manifest);

    const events = eventsAbout(DEPLOYMENT);
    assert.deepEqual(
      events.map((e) => [e.type, e.reason, e.action]),
      [
        ['Warning', 'SnapshotFailed', 'Snapshot'],
        ['Normal', 'SnapshotPublished', 'Snapshot'],
        ['Normal', 'DrillPassed', 'Drill'],
      ],
    );
    for (const e of events) {
      assert.deepEqual(e.regarding, {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        name: DEPLOYMENT,
        namespace: NAMESPACE,
        uid: deployment.metadata.uid,
      });
      assert.equal(e.reportingController, 'etcd-autobackup.io/worker');
      assert.match(String(e.eventTime), /^\d{4}-\d\d-\d\dT/);
    }
    const [failed, published, drilled] = events.map((e) => String(e.note));
    assert.match(failed ?? '', /attempt 1, failed at stage upload \(retrying\): /);
    assert.match(
      published ?? '',
      new RegExp(`snapshot ${manifest.id} .*revision ${manifest.etcd.revision}, .* stored at `),
    );
    assert.match(drilled ?? '', new RegExp(`snapshot ${manifest.id} .*matched its manifest \\(.*hashkv`));
    assert.deepEqual((await metrics.notificationFailures.get()).values, []);
    assert.deepEqual(api.problems, []);
  });
});

test('a hanging or forbidden Events API never blocks or fails a snapshot; each miss is counted', async () => {
  await withStack(async (stack, cleanup) => {
    const metrics = createMetrics({ defaultMetrics: false });
    const notifier = new KubeEventNotifier({
      kube: api.kubeConfig(NAMESPACE),
      namespace: NAMESPACE,
      deployment: DEPLOYMENT,
      timeoutMs: 300,
      log: stack.log,
      onFailure: (reason) => metrics.notificationFailures.inc({ channel: 'events', reason }),
    });
    const config = stack.config();
    const pool = await startWorkerPool({ config, store: stack.store, log: stack.log, notifier });
    cleanup(() => pool.close());
    const recorder = createQueueRecorder({ config });
    cleanup(() => recorder.close());

    let release: () => void = () => undefined;
    const hanging = new Promise<void>((r) => (release = r));
    api.gate = (req) => (req.resource === 'events' || req.resource === 'deployments' ? hanging : Promise.resolve());
    cleanup(() => {
      api.gate = undefined;
      release();
      return Promise.resolve();
    });
    await recorder.enqueueNow();
    await waitManifests(stack, 1);
    await waitIdle(recorder.queue);
    await notifier.settle();
    assert.deepEqual(
      (await metrics.notificationFailures.get()).values.map((v) => [v.labels.reason, v.value]),
      [['timeout', 1]],
    );

    // Without the events rule in the Role: a 403, logged and counted, the snapshot published.
    api.gate = undefined;
    release();
    api.rbac = rules.filter((r) => !r.resources.includes('events'));
    cleanup(() => Promise.resolve(void (api.rbac = rules)));
    const problemsBefore = api.problems.length;
    await recorder.enqueueNow();
    await waitManifests(stack, 2);
    await waitIdle(recorder.queue);
    await notifier.settle();
    assert.deepEqual((await metrics.notificationFailures.get()).values.map((v) => [v.labels.reason, v.value]).sort(), [
      ['api', 1],
      ['timeout', 1],
    ]);
    assert.match(api.problems.slice(problemsBefore).join('\n'), /RBAC forbids create events/);
    api.problems.splice(problemsBefore);
  });
});

test('Event notes stay within the 1 kB the apiserver accepts', async () => {
  const { failedEvent } = await import('../../worker/notify/kube-events.js');
  const note = failedEvent({
    cluster: 'c',
    jobId: 'j',
    attempt: 1,
    stage: 'upload',
    message: 'x'.repeat(5000),
    retrying: false,
  }).note;
  assert.equal(note.length, MAX_NOTE);
  assert.ok(note.endsWith('...'));
});
