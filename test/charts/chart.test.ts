import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../core/config/index.js';
import type { V1VolumeMount } from '@kubernetes/client-node';
import { loadIdentities, loadRecipients } from '../../worker/crypto/age.js';
import { buildDrillJob } from '../../worker/drill-job.js';
import type { Manifest } from '../../worker/manifest.js';
import { createHealthApp } from '../../core/http/health.js';
import { createLogger } from '../../core/logger.js';
import { createMetrics } from '../../core/metrics.js';
import { createWebhookApp } from '../../webhook/app.js';
import {
  byKind,
  find,
  rbacProblems,
  schemaProblems,
  wiringProblems,
  workloads,
  type Container,
  type Workload,
} from '../support/chart-checks.js';
import { CHART, chartTools, helm, NAMESPACE, RELEASE, renderChart, type K8sObject } from '../support/helm.js';
import { tempDir } from '../support/tmp.js';
import { runCli } from '../support/cli.js';
import { createCa } from '../../certs/pki.js';

const CI = join(CHART, 'ci');
const SCENARIOS: readonly { name: string; files: string[] }[] = [
  { name: 'defaults', files: [] },
  ...readdirSync(CI)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => ({ name: f.replace(/-values\.yaml$/, ''), files: [join(CI, f)] })),
];
/** Secrets and claims the example values say the operator brings. */
const EXTERNAL = {
  secrets: [
    'ncp-object-storage',
    'etcd-autobackup-webhook-cert',
    'oci-api-key',
    'etcd-backup-encryption',
    'apiserver-audit-client-ca',
  ],
  claims: ['etcd-snapshots'],
};
/** Secret values in the example files: none may reach a ConfigMap or the notes. */
const SECRET_VALUES = /secret-value|external-redis-password|oci-key-passphrase/;
const FULLNAME = `${RELEASE}-etcd-autobackup`;

before(async () => {
  await chartTools();
});

function container(w: Workload, name: string): Container {
  const c = w.pod.containers.find((x) => x.name === name);
  assert.ok(c, `${w.object.metadata.name} has no container ${name}`);
  return c;
}

function deployment(objects: readonly K8sObject[], component: string): Workload {
  const w = workloads(objects).find((x) => x.object.metadata.name === `${FULLNAME}-${component}`);
  assert.ok(w, `Deployment ${FULLNAME}-${component} is not rendered`);
  return w;
}

function decodedSecret(objects: readonly K8sObject[], name: string): Record<string, string> | undefined {
  const s = find(objects, 'Secret', name);
  if (!s) return undefined;
  return Object.fromEntries(
    Object.entries((s.data as Record<string, string> | undefined) ?? {}).map(([k, v]) => [
      k,
      Buffer.from(v, 'base64').toString('utf8'),
    ]),
  );
}

/** The downward API fields the kubelet would fill in, for a pod with this address. */
const POD_IP = '10.0.0.12';
const FIELDS: Record<string, string> = {
  'status.podIP': POD_IP,
  'metadata.namespace': NAMESPACE,
  'metadata.name': 'pod-0',
};

/**
 * The config a container would load: the ConfigMap's file at ETCD_AUTOBACKUP_CONFIG, the env vars
 * from the rendered Secrets and downward API, and the --listen flag of its args with `$(VAR)`
 * expanded from that env as the kubelet does, through the service's own loadConfig.
 */
async function loadedConfig(objects: readonly K8sObject[], w: Workload, c: Container, dir: string): Promise<Config> {
  const env: NodeJS.ProcessEnv = {};
  for (const from of c.envFrom ?? [])
    Object.assign(env, from.secretRef ? decodedSecret(objects, from.secretRef.name) : {});
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    const ref = e.valueFrom?.secretKeyRef;
    if (ref) env[e.name] = decodedSecret(objects, ref.name)?.[ref.key];
    const field = e.valueFrom?.fieldRef?.fieldPath;
    if (field) env[e.name] = FIELDS[field];
  }
  const path = env.ETCD_AUTOBACKUP_CONFIG;
  assert.ok(path, `${c.name}: no ETCD_AUTOBACKUP_CONFIG`);
  const mount = c.volumeMounts?.find((m) => m.mountPath === path);
  assert.ok(mount?.subPath, `${c.name}: nothing is mounted at ${path}`);
  const cmName = w.pod.volumes?.find((v) => v.name === mount.name)?.configMap?.name;
  assert.ok(cmName, `${c.name}: ${path} is not from a ConfigMap`);
  const text = (find(objects, 'ConfigMap', cmName)?.data as Record<string, string>)[mount.subPath];
  assert.ok(text, `ConfigMap ${cmName} has no ${mount.subPath}`);
  const file = join(dir, `${w.object.metadata.name}.yaml`);
  await writeFile(file, text);
  delete env.ETCD_AUTOBACKUP_CONFIG;
  const args = (c.args ?? []).map((a) =>
    a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env[name] ?? m),
  );
  const at = args.indexOf('--listen');
  for (const name of Object.keys(env)) if (!name.startsWith('ETCD_AUTOBACKUP_')) delete env[name];
  return loadConfig({ file, env, flags: at >= 0 ? { listen: args[at + 1] } : {} });
}

/** Whether `path` is inside one of the container's mounts. */
function mounted(c: Container, path: string): boolean {
  return (c.volumeMounts ?? []).some((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
}

/** The example recipient of age's specification. */
const AGE_EXAMPLE = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';

describe('chart: helm lint and the values schema', () => {
  test('helm lint --strict passes for the defaults and every example values file', async () => {
    for (const s of SCENARIOS) {
      const r = await helm(['lint', '--strict', CHART, '--namespace', NAMESPACE, ...s.files.flatMap((f) => ['-f', f])]);
      assert.equal(r.code, 0, `${s.name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, /0 chart\(s\) failed/);
    }
  });

  test('values.schema.json rejects wrong values through helm itself, naming the value', async () => {
    const cases: [string[], RegExp][] = [
      [['config.snapshot.compression=lz4'], /config\.snapshot\.compression|\/config\/snapshot\/compression/],
      [['config.queue.debounceWindow=5 minutes'], /debounceWindow/],
      [['config.etcd.endpoint=https://10.0.0.1:2379'], /endpoint/],
      [['webhook.replicas=two'], /replicas/],
      [['cloudProvider=gcp'], /cloudProvider/],
      [['worker.localStore.type=nfs'], /localStore/],
      [['webhookk.replicas=2'], /webhookk/],
      [['encryption.ageRecipients[0]=age1notarecipient'], /ageRecipients/],
    ];
    for (const [set, pattern] of cases) {
      const r = await helm(['template', RELEASE, CHART, ...set.flatMap((s) => ['--set', s])]);
      assert.notEqual(r.code, 0, `${set.join(' ')} was accepted`);
      assert.match(r.stderr, /values don't meet the specifications of the schema/, r.stderr);
      assert.match(r.stderr, pattern, r.stderr);
    }
  });

  test('mistakes the schema cannot see fail the render with what to fix', async () => {
    const cases: [string[], RegExp][] = [
      [['cloudProvider=aws'], /neither aws\.bucket nor aws\.region is set/],
      [['cloudProvider=oci', 'oci.user_ocid=u', 'oci.namespace=n', 'oci.bucket_region=r'], /oci\.tenancy_ocid/],
      [['redis.enabled=false'], /redis\.external\.url/],
      [['config.executor.mode=job'], /executor\.mode is job but the store is a local folder/],
      [['worker.localStore.type=pvc'], /worker\.localStore\.existingClaim/],
      [
        ['config.executor.mode=job', 'config.store.url=s3://b/p', 'encryption.existingSecret=k'],
        /snapshot Job does not mount the key Secret/,
      ],
      [
        ['encryption.existingSecret=k', `encryption.ageRecipients[0]=${AGE_EXAMPLE}`],
        /encryption\.existingSecret .* and encryption\.ageRecipients \(age\) cannot both encrypt/,
      ],
    ];
    for (const [set, pattern] of cases) {
      const r = await helm(['template', RELEASE, CHART, ...set.flatMap((s) => ['--set', s])]);
      assert.notEqual(r.code, 0, `${set.join(' ')} was accepted`);
      assert.match(r.stderr, pattern);
    }
  });
});

describe('chart: rendered objects', () => {
  for (const scenario of SCENARIOS) {
    test(`${scenario.name}: valid Kubernetes objects, wired together, with a config the service loads`, async () => {
      const objects = await renderChart(scenario.files);
      assert.deepEqual(schemaProblems(objects), []);
      assert.deepEqual(wiringProblems(objects, EXTERNAL), []);
      assert.deepEqual(rbacProblems(objects), []);

      for (const cm of byKind(objects, 'ConfigMap'))
        assert.doesNotMatch(JSON.stringify(cm), SECRET_VALUES, `a secret value is in ConfigMap ${cm.metadata.name}`);

      const webhook = deployment(objects, 'webhook');
      const worker = deployment(objects, 'worker');
      const dir = await tempDir('chart');
      try {
        const wc = container(webhook, 'webhook');
        const webhookConfig = await loadedConfig(objects, webhook, wc, dir.path);
        const kc = container(worker, 'worker');
        const workerConfig = await loadedConfig(objects, worker, kc, dir.path);
        // Store credentials reach the worker only; the webhook never opens the store.
        const { accessKeyId, secretAccessKey, sessionToken } = webhookConfig.store.s3;
        assert.deepEqual(
          { accessKeyId, secretAccessKey, sessionToken, passphrase: webhookConfig.store.oci.passphrase },
          { accessKeyId: undefined, secretAccessKey: undefined, sessionToken: undefined, passphrase: undefined },
          'the webhook has no store credentials',
        );
        const withoutStoreKeys = (c: Config) => ({
          ...c,
          webhook: undefined,
          store: {
            ...c.store,
            s3: { ...c.store.s3, accessKeyId: undefined, secretAccessKey: undefined, sessionToken: undefined },
            oci: { ...c.store.oci, passphrase: undefined },
          },
        });
        assert.deepEqual(
          withoutStoreKeys(webhookConfig),
          withoutStoreKeys(workerConfig),
          'both processes share one config',
        );

        // The ports the probes and Services use are the ones the processes listen on.
        const port = (c: Container, name: string) => c.ports?.find((p) => p.name === name)?.containerPort;
        assert.equal(webhookConfig.webhook.listen, `0.0.0.0:${port(wc, 'https')}`);
        // The worker binds the pod IP (the node's address on the host network), not every address.
        assert.equal(workerConfig.webhook.listen, `${POD_IP}:${port(kc, 'http')}`);
        if (workerConfig.metricsAuth.tokenFile) assert.ok(mounted(kc, workerConfig.metricsAuth.tokenFile));
        if (webhookConfig.metricsAuth.tokenFile) assert.ok(mounted(wc, webhookConfig.metricsAuth.tokenFile));

        // HTTPS for the API server: either managed certs or mounted files.
        assert.ok(
          webhookConfig.certs.manage ||
            (webhookConfig.webhook.tls.certFile && mounted(wc, webhookConfig.webhook.tls.certFile)),
          'the webhook serves HTTPS',
        );
        for (const f of [webhookConfig.auditAuth.tokenFile, webhookConfig.auditAuth.clientCaFile])
          if (f) assert.ok(mounted(wc, f), `${f} is mounted in the webhook`);
        if (webhookConfig.certs.manage) {
          assert.equal(webhookConfig.certs.serviceName, `${FULLNAME}-webhook`);
          assert.equal(webhookConfig.certs.namespace, NAMESPACE);
          assert.ok(find(objects, 'Service', webhookConfig.certs.serviceName));
          const vwc = byKind(objects, 'ValidatingWebhookConfiguration')[0];
          assert.equal(webhookConfig.certs.webhookConfigName, vwc?.metadata.name);
        }

        // What the worker reads is mounted in the worker (etcd certs, store folder, keys).
        if (workerConfig.executor.mode === 'process') {
          for (const f of [workerConfig.etcd.cacert, workerConfig.etcd.cert, workerConfig.etcd.key])
            if (f) assert.ok(mounted(kc, f), `${f} is mounted in the worker`);
        } else {
          assert.equal(workerConfig.executor.configMap, FULLNAME);
          assert.ok(find(objects, 'ConfigMap', FULLNAME));
          assert.ok(workerConfig.executor.image?.startsWith('etcd-autobackup:'));
        }
        if (workerConfig.store.url.startsWith('file://'))
          assert.ok(mounted(kc, new URL(workerConfig.store.url).pathname), 'the file store is mounted');
        if (workerConfig.store.oci.privateKeyFile)
          assert.ok(mounted(kc, workerConfig.store.oci.privateKeyFile), 'the OCI API key is mounted in the worker');
        for (const f of [workerConfig.encryption.keyFile, ...workerConfig.encryption.decryptionKeyFiles])
          if (f) assert.ok(mounted(kc, f), `${f} is mounted`);
        if (byKind(objects, 'StatefulSet').length > 0)
          assert.equal(workerConfig.redis.url, `redis://${FULLNAME}-redis:6379`);
        assert.ok(
          workerConfig.redis.password !== undefined || /:[^@/]+@/.test(workerConfig.redis.url),
          'Redis has a password',
        );
      } finally {
        await dir.remove();
      }
    });
  }
});

describe('chart: what the defaults promise', () => {
  test('webhook: 2 replicas, PDB, non-root, read-only root, probes on /healthz and /readyz; admission webhook that never blocks', async () => {
    const objects = await renderChart();
    const webhook = deployment(objects, 'webhook');
    assert.equal((webhook.object.spec as { replicas: number }).replicas, 2);
    assert.ok(byKind(objects, 'PodDisruptionBudget').length === 1);
    assert.equal(webhook.pod.securityContext?.runAsNonRoot, true);
    const c = container(webhook, 'webhook');
    assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
    assert.equal(c.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(c.readinessProbe?.httpGet?.scheme, 'HTTPS');

    const [vwc] = byKind(objects, 'ValidatingWebhookConfiguration');
    const hook = (
      vwc?.webhooks as {
        failurePolicy: string;
        sideEffects: string;
        timeoutSeconds: number;
        clientConfig: { service: { path: string } };
        rules: { operations: string[] }[];
        matchConditions: { expression: string }[];
      }[]
    )[0];
    assert.ok(hook);
    assert.equal(hook.failurePolicy, 'Ignore');
    assert.equal(hook.sideEffects, 'NoneOnDryRun');
    assert.ok(hook.timeoutSeconds <= 5);
    assert.equal(hook.clientConfig.service.path, '/admission');
    assert.deepEqual(hook.rules[0]?.operations, ['CREATE', 'UPDATE', 'DELETE']);
    const conditions = hook.matchConditions.map((m) => m.expression).join(' ');
    assert.match(conditions, /'coordination\.k8s\.io' && request\.resource\.resource == 'leases'/);
    assert.match(conditions, /'' && request\.resource\.resource == 'events'/);
  });

  test('worker: control-plane nodes, etcd certs read-only from the host, non-root except a CHOWN-only init step', async () => {
    const objects = await renderChart();
    const worker = deployment(objects, 'worker');
    assert.deepEqual((worker.pod as unknown as { nodeSelector: Record<string, string> }).nodeSelector, {
      'node-role.kubernetes.io/control-plane': '',
    });
    const tolerations = (worker.pod as unknown as { tolerations: { key: string }[] }).tolerations;
    assert.ok(tolerations.some((t) => t.key === 'node-role.kubernetes.io/control-plane'));
    const host = worker.pod.volumes?.find((v) => v.hostPath?.path === '/etc/kubernetes/pki/etcd');
    assert.ok(host, 'etcd certs come from /etc/kubernetes/pki/etcd');
    const [init] = worker.pod.initContainers ?? [];
    assert.ok(init);
    assert.equal(init.volumeMounts?.find((m) => m.name === host.name)?.readOnly, true);
    assert.deepEqual(init.securityContext?.capabilities, { drop: ['ALL'], add: ['CHOWN'] });
    assert.equal(init.securityContext?.allowPrivilegeEscalation, false);
    const c = container(worker, 'worker');
    assert.equal(c.securityContext?.runAsUser ?? worker.pod.securityContext?.runAsUser, 10001);
    assert.ok(!c.volumeMounts?.some((m) => m.name === host.name), 'the worker reads the copies, not the host folder');

    const rendered = await renderChart(
      [],
      ['worker.copyEtcdCerts=false', 'etcd.certPath=/srv/etcd-pki', 'etcd.certFile=apiserver-etcd-client.crt'],
    );
    const plain = deployment(rendered, 'worker');
    assert.equal(
      plain.pod.initContainers?.[0]?.volumeMounts?.some((m) => m.mountPath === '/host-etcd-pki'),
      false,
    );
    const mount = container(plain, 'worker').volumeMounts?.find((m) => m.mountPath === '/etc/etcd-autobackup/etcd-pki');
    assert.equal(mount?.readOnly, true);
    assert.equal(plain.pod.volumes?.find((v) => v.name === mount?.name)?.hostPath?.path, '/srv/etcd-pki');
    assert.match(JSON.stringify(find(rendered, 'ConfigMap', FULLNAME)), /etcd-pki\/apiserver-etcd-client\.crt/);
  });

  test('RBAC: the job executor adds Jobs and pod logs in the namespace only; no API token where none is needed', async () => {
    // Kubernetes Events (on by default) need the worker's token: off here, no pod has one.
    const plain = await renderChart([], ['tls.mode=secret', 'config.events.enabled=false']);
    assert.equal(byKind(plain, 'ClusterRole').length, 0);
    assert.ok(!JSON.stringify(byKind(plain, 'Role')).includes('"deployments"'));
    assert.ok(!JSON.stringify(byKind(plain, 'Role')).includes('"jobs"'));
    for (const w of workloads(plain))
      assert.equal(
        (w.pod as { automountServiceAccountToken?: boolean }).automountServiceAccountToken,
        false,
        w.object.metadata.name,
      );

    const jobs = await renderChart([join(CI, 'job-executor-values.yaml')]);
    const role = find(jobs, 'Role', `${FULLNAME}-worker`);
    assert.match(JSON.stringify(role), /"jobs"/);
    assert.match(JSON.stringify(role), /"pods\/log"/);
    assert.equal(
      (deployment(jobs, 'worker').pod as { automountServiceAccountToken?: boolean }).automountServiceAccountToken,
      true,
    );
    const [cr] = byKind(jobs, 'ClusterRole');
    assert.deepEqual((cr?.rules as { resourceNames: string[] }[])[0]?.resourceNames, [FULLNAME]);
  });

  test('secret fields move from config into the chart Secret, keyed by their env var', async () => {
    const objects = await renderChart(
      [join(CI, 'external-redis-values.yaml')],
      ['config.dashboard.user=admin', 'config.dashboard.password=dash-pass-1'],
    );
    const secret = decodedSecret(objects, FULLNAME);
    assert.equal(secret?.ETCD_AUTOBACKUP_S3_SECRET_ACCESS_KEY, 'minio-secret-value');
    assert.equal(secret?.ETCD_AUTOBACKUP_DASHBOARD_PASSWORD, 'dash-pass-1');
    assert.match(secret?.ETCD_AUTOBACKUP_REDIS_URL ?? '', /external-redis-password@/);
    const cm = JSON.stringify(find(objects, 'ConfigMap', FULLNAME));
    assert.doesNotMatch(cm, /dash-pass-1|minio-secret-value|external-redis-password/);
    // The access key id is half a credential: in the Secret too, and only the worker's.
    assert.doesNotMatch(cm, /accessKeyId/);
    assert.equal(secret?.ETCD_AUTOBACKUP_S3_ACCESS_KEY_ID, 'minio');
    const webhookSecret = decodedSecret(objects, `${FULLNAME}-webhook`);
    assert.equal(webhookSecret?.ETCD_AUTOBACKUP_DASHBOARD_PASSWORD, 'dash-pass-1');
    assert.equal(webhookSecret?.ETCD_AUTOBACKUP_S3_ACCESS_KEY_ID, undefined);
    assert.equal(webhookSecret?.ETCD_AUTOBACKUP_S3_SECRET_ACCESS_KEY, undefined);
  });

  test("the original chart's values file, unchanged, becomes the config the worker loads: etcd, certs, store, keys", async () => {
    const cases = [
      {
        file: 'original-aws-values.yaml',
        url: 's3://jujy-etcd-backup-ap-northeast-2',
        check: (c: Config) => {
          assert.equal(c.store.s3.region, 'ap-northeast-2');
          assert.equal(c.store.s3.accessKeyId, 'AKIAORIGINALEXAMPLE');
          assert.equal(c.store.s3.secretAccessKey, 'original-aws-secret-value');
          // The original's AWS rule: 60 days to GLACIER, gone after 180.
          assert.deepEqual(
            { ...c.lifecycle, storageClass: c.lifecycle.storageClass ?? 'GLACIER' },
            { enabled: true, transitionDays: 60, expireDays: 180, storageClass: 'GLACIER' },
          );
        },
      },
      {
        file: 'original-ncp-values.yaml',
        url: 'ncp://jujy-etcd-backup-kr?region=kr',
        check: (c: Config) => {
          assert.equal(c.store.s3.accessKeyId, 'NCPORIGINALKEY');
          assert.equal(c.store.s3.secretAccessKey, 'ncp-original-secret-value');
        },
      },
      {
        file: 'original-oci-values.yaml',
        url: 'oci://mynamespace/jujy-etcd-backup-ap-seoul-1?region=ap-seoul-1',
        check: (c: Config) => {
          assert.equal(c.store.oci.user, 'ocid1.user.oc1..aaaaoriginaluser');
          assert.equal(c.store.oci.tenancy, 'ocid1.tenancy.oc1..aaaaoriginaltenancy');
          assert.equal(c.store.oci.region, 'ap-seoul-1');
          assert.equal(c.store.oci.fingerprint, undefined, 'derived from the key at start');
          assert.equal(c.store.oci.privateKeyFile, '/etc/etcd-autobackup/oci-api-key/oci_api_key.pem');
        },
      },
      {
        file: 'original-blank-values.yaml',
        url: 'oci://blanknamespace/jujy-etcd-backup-us-ashburn-1?region=us-ashburn-1',
        check: (c: Config) => assert.equal(c.store.oci.tenancy, 'ocid1.tenancy.oc1..aaaablanktenancy'),
      },
    ];
    for (const { file, url, check } of cases) {
      const objects = await renderChart([join(CI, file)]);
      const worker = deployment(objects, 'worker');
      const kc = container(worker, 'worker');
      const dir = await tempDir('chart-original');
      try {
        const config = await loadedConfig(objects, worker, kc, dir.path);
        assert.equal(config.store.url, url, file);
        assert.equal(config.store.createBucket, true, `${file}: the original created its bucket`);
        assert.deepEqual(config.etcd.endpoints, ['https://10.0.0.11:2379'], file);
        assert.equal(config.etcd.cacert, '/etc/etcd-autobackup/etcd-pki/ca.crt');
        assert.equal(config.etcd.cert, '/etc/etcd-autobackup/etcd-pki/server.crt', "the original's client cert");
        assert.equal(config.etcd.key, '/etc/etcd-autobackup/etcd-pki/server.key');
        check(config);
        // The host folder is etcd.cert_path, and the init step copies exactly these files.
        const host = worker.pod.volumes?.find((v) => v.name === 'etcd-pki-host')?.hostPath?.path;
        assert.equal(host, '/etc/kubernetes/pki/etcd', file);
        const prepare = worker.pod.initContainers?.find((c) => c.name === 'prepare');
        const command = (prepare as { command?: string[] } | undefined)?.command ?? [];
        assert.deepEqual(command.slice(-3), ['ca.crt', 'server.crt', 'server.key'], file);
        if (config.store.oci.privateKeyFile) {
          const keyVol = worker.pod.volumes?.find((v) => v.name === 'oci-api-key-host');
          assert.equal(keyVol?.hostPath?.path, '/root/.oci/oci_api_key.pem');
          assert.ok(prepare?.volumeMounts?.some((m) => m.name === 'oci-api-key-host'));
        }
      } finally {
        await dir.remove();
      }
      // Credentials: in the worker's Secret only, never the ConfigMap nor the webhook's Secret.
      const cm = JSON.stringify(find(objects, 'ConfigMap', FULLNAME));
      assert.doesNotMatch(cm, /AKIAORIGINALEXAMPLE|NCPORIGINALKEY|secret-value/, file);
      const webhookSecret = decodedSecret(objects, `${FULLNAME}-webhook`) ?? {};
      assert.deepEqual(
        Object.keys(webhookSecret).filter((k) => /S3|OCI/.test(k)),
        [],
        `${file}: the webhook gets no store keys`,
      );
      const webhook = container(deployment(objects, 'webhook'), 'webhook');
      assert.ok(
        !(webhook.envFrom ?? []).some((e) => e.secretRef?.name === FULLNAME),
        "the webhook does not mount the worker's Secret",
      );
    }

    // A bucket given explicitly wins over the default name; a bare endpoint without certs is http.
    const explicit = await renderChart(
      [join(CI, 'original-aws-values.yaml')],
      ['aws.bucket=my-bucket', 'etcd.cert_path=', 'etcd.certPath=', 'etcd.clientCert=healthcheck-client'],
    );
    const cfg = (find(explicit, 'ConfigMap', FULLNAME)?.data as Record<string, string>)['config.yaml'] ?? '';
    assert.match(cfg, /url: s3:\/\/my-bucket\n/);
    assert.match(cfg, /- http:\/\/10\.0\.0\.11:2379/);
    const kubeadm = await renderChart([join(CI, 'original-aws-values.yaml')], ['etcd.clientCert=healthcheck-client']);
    assert.match(
      (find(kubeadm, 'ConfigMap', FULLNAME)?.data as Record<string, string>)['config.yaml'] ?? '',
      /cert: \/etc\/etcd-autobackup\/etcd-pki\/healthcheck-client\.crt/,
    );
  });

  test('worker /tmp (verify and restore scratch) is sized for the database, not 256Mi', async () => {
    const tmp = (objects: K8sObject[]) =>
      (deployment(objects, 'worker').pod.volumes?.find((v) => v.name === 'tmp')?.emptyDir ?? {}) as {
        sizeLimit?: string;
        medium?: string;
      };
    assert.deepEqual(tmp(await renderChart()), { sizeLimit: '4Gi' });
    assert.deepEqual(tmp(await renderChart([], ['worker.scratch.sizeLimit=16Gi', 'worker.scratch.medium=Memory'])), {
      sizeLimit: '16Gi',
      medium: 'Memory',
    });
  });

  test('helm test: a hook Pod runs `config check` on the rendered config, with no store credentials', async () => {
    const objects = await renderChart([join(CI, 'original-aws-values.yaml')]);
    const pod = find(objects, 'Pod', `${FULLNAME}-config-check`);
    assert.ok(pod, 'the test Pod is rendered');
    assert.equal(pod.metadata.annotations?.['helm.sh/hook'], 'test');
    const spec = pod.spec as Workload['pod'];
    const c = spec.containers[0];
    assert.ok(c);
    assert.deepEqual(c.args, ['config', 'check']);
    assert.ok(!(c.envFrom ?? []).some((e) => e.secretRef?.name === FULLNAME), "not the worker's Secret");
    const dir = await tempDir('chart-test-pod');
    try {
      const workload: Workload = { object: pod, labels: {}, pod: spec };
      const config = await loadedConfig(objects, workload, c, dir.path);
      assert.equal(config.store.url, 's3://jujy-etcd-backup-ap-northeast-2');
      assert.equal(config.store.s3.secretAccessKey, undefined);
    } finally {
      await dir.remove();
    }
  });

  test('metricsAuth: one generated token Secret, mounted where both processes read it, sent by the ServiceMonitor; the worker answers 401 without it', async () => {
    const objects = await renderChart([], ['metricsAuth.enabled=true', 'metrics.serviceMonitor.enabled=true']);
    const secret = decodedSecret(objects, `${FULLNAME}-metrics-token`);
    const token = secret?.token ?? '';
    assert.ok(token.length >= 32, 'a long generated token');
    const [sm] = byKind(objects, 'ServiceMonitor');
    const endpoints = (
      sm?.spec as { endpoints: { authorization?: { type: string; credentials: { name: string; key: string } } }[] }
    ).endpoints;
    assert.equal(endpoints.length, 2);
    for (const e of endpoints)
      assert.deepEqual(e.authorization, {
        type: 'Bearer',
        credentials: { name: `${FULLNAME}-metrics-token`, key: 'token' },
      });

    const dir = await tempDir('chart-metrics');
    try {
      const worker = deployment(objects, 'worker');
      const kc = container(worker, 'worker');
      const config = await loadedConfig(objects, worker, kc, dir.path);
      const tokenFile = config.metricsAuth.tokenFile ?? '';
      const mount = kc.volumeMounts?.find((m) => tokenFile.startsWith(`${m.mountPath}/`));
      const volume = worker.pod.volumes?.find((v) => v.name === mount?.name) as
        { secret?: { secretName: string; items: { key: string; path: string }[] } } | undefined;
      assert.equal(volume?.secret?.secretName, `${FULLNAME}-metrics-token`);
      assert.equal(`${mount?.mountPath}/${volume?.secret?.items[0]?.path}`, tokenFile, 'the file the config names');
      const webhook = deployment(objects, 'webhook');
      assert.equal(
        (await loadedConfig(objects, webhook, container(webhook, 'webhook'), dir.path)).metricsAuth.tokenFile,
        tokenFile,
      );

      // The worker's app with that Secret's content where the config says: real HTTP.
      const local = join(dir.path, 'token');
      await writeFile(local, token);
      const app = createHealthApp({
        metrics: createMetrics({ defaultMetrics: false }),
        ready: () => true,
        log: createLogger({ level: 'silent' }),
        metricsAuth: { tokenFile: local },
      });
      const server = app.listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      try {
        const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        assert.equal((await fetch(`${base}/metrics`)).status, 401);
        assert.equal((await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    } finally {
      await dir.remove();
    }
  });

  test('probes and the admission path hit routes the processes really serve', async () => {
    const objects = await renderChart();
    const config = loadConfig({ env: {} });
    const log = createLogger({ level: 'silent' });
    const apps = {
      webhook: createWebhookApp({
        config,
        recorder: { record: () => undefined },
        log,
        metrics: createMetrics({ defaultMetrics: false }),
        ready: () => true,
      }),
      worker: createHealthApp({ metrics: createMetrics({ defaultMetrics: false }), ready: () => true, log }),
    };
    const [vwc] = byKind(objects, 'ValidatingWebhookConfiguration');
    const admissionPath = (vwc?.webhooks as { clientConfig: { service: { path: string } } }[])[0]?.clientConfig.service
      .path;
    for (const [component, app] of Object.entries(apps)) {
      const server = app.listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      try {
        const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        const c = container(deployment(objects, component), component);
        for (const probe of [c.livenessProbe, c.readinessProbe]) {
          const res = await fetch(`${base}${probe?.httpGet?.path ?? ''}`);
          assert.equal(res.status, 200, `${component} ${probe?.httpGet?.path}`);
        }
        if (component === 'webhook') {
          const res = await fetch(`${base}${admissionPath ?? ''}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: '{}',
          });
          assert.notEqual(res.status, 404, `the webhook serves ${admissionPath}`);
        }
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    }
  });

  test('NOTES.txt tells how to open the dashboard, check the last backup and wire the audit webhook, and prints no secret', async () => {
    const r = await helm([
      'install',
      RELEASE,
      CHART,
      '--namespace',
      NAMESPACE,
      '--dry-run=client',
      '-f',
      join(CI, 'aws-values.yaml'),
      '-f',
      join(CI, 'external-redis-values.yaml'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    assert.match(notes, /port-forward svc\/eab-etcd-autobackup-webhook/);
    assert.match(notes, /\/queues/);
    assert.match(notes, /etcd-autobackup list/);
    assert.match(notes, /etcd-autobackup audit-config/);
    assert.match(notes, /config\.queue\.debounceWindow: 2m/, 'the aws example sets 2m');
    assert.doesNotMatch(notes, SECRET_VALUES);

    // The audit-config command runs as printed: its arguments, with the CA piped on stdin, are accepted.
    const line = notes.split('\n').find((l) => l.includes('-- etcd-autobackup audit-config')) ?? '';
    const args = (line.split('-- etcd-autobackup ')[1] ?? '').split(' < ')[0]?.trim().split(/\s+/) ?? [];
    assert.equal(args[0], 'audit-config');
    const dir = await tempDir('notes');
    try {
      const ca = createCa('notes-test-ca');
      const caFile = join(dir.path, 'webhook-ca.crt');
      await writeFile(caFile, ca.cert);
      const r = await runCli(args.map((a) => (a === '/dev/stdin' ? caFile : a)));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /server: https:\/\/eab-etcd-autobackup-webhook\.backup\.svc(:443)?\/audit/);
    } finally {
      await dir.remove();
    }
    assert.doesNotMatch(notes, /dashboard-secret-value/);
  });
});

describe('chart: age recipients reach the worker', () => {
  const SECOND = 'age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg';
  const recipientsText = `# operators\n${AGE_EXAMPLE}\n\n${SECOND}  \n`;

  /** The worker's config as the service loads it, and the worker's container. */
  async function workerWith(set: string[], setFile: Record<string, string> = {}) {
    const dir = await tempDir('chart-age');
    try {
      const files: string[] = [];
      for (const [name, text] of Object.entries(setFile)) {
        const file = join(dir.path, name.replace(/\W/g, '_'));
        await writeFile(file, text);
        files.push(`${name}=${file}`);
      }
      const objects = await renderChart([], set, files);
      const worker = deployment(objects, 'worker');
      const kc = container(worker, 'worker');
      return { objects, worker, kc, config: await loadedConfig(objects, worker, kc, dir.path) };
    } finally {
      await dir.remove();
    }
  }

  test('values: encryption.ageRecipients become encryption.recipients of the loaded config', async () => {
    const { config } = await workerWith([
      `encryption.ageRecipients[0]=${AGE_EXAMPLE}`,
      `encryption.ageRecipients[1]=${SECOND}`,
    ]);
    assert.deepEqual(config.encryption.recipients, [AGE_EXAMPLE, SECOND]);
    assert.deepEqual(await loadRecipients(config.encryption), [AGE_EXAMPLE, SECOND]);
    assert.equal(config.encryption.keyFile, undefined);
  });

  test('file: --set-file encryption.ageRecipientsFile is read as age -R reads it (comments, blanks); a bad line fails the render naming it', async () => {
    const { config } = await workerWith([], { 'encryption.ageRecipientsFile': recipientsText });
    assert.deepEqual(config.encryption.recipients, [AGE_EXAMPLE, SECOND]);
    assert.deepEqual(await loadRecipients(config.encryption), [AGE_EXAMPLE, SECOND]);

    const dir = await tempDir('chart-age-bad');
    try {
      const file = join(dir.path, 'recipients.txt');
      await writeFile(file, `${AGE_EXAMPLE}\nage1typo\n`);
      const r = await helm(['template', RELEASE, CHART, '--set-file', `encryption.ageRecipientsFile=${file}`]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /encryption\.ageRecipientsFile line 2 is not an age X25519 recipient/);
    } finally {
      await dir.remove();
    }
  });

  test('Secret: encryption.ageRecipientsSecret is mounted in the worker only and named as encryption.recipientsFile', async () => {
    const { objects, worker, kc, config } = await workerWith([
      'encryption.ageRecipientsSecret=etcd-autobackup-age',
      `encryption.ageRecipients[0]=${SECOND}`,
    ]);
    const file = config.encryption.recipientsFile;
    assert.equal(file, '/etc/etcd-autobackup/age/recipients.txt');
    assert.deepEqual(config.encryption.recipients, [SECOND]);
    const mount = (kc.volumeMounts ?? []).find((m) => file.startsWith(`${m.mountPath}/`));
    assert.ok(mount, 'the recipients file is mounted in the worker');
    const volume = worker.pod.volumes?.find((v) => v.name === mount.name);
    assert.deepEqual(volume?.secret, {
      secretName: 'etcd-autobackup-age',
      items: [{ key: 'recipients.txt', path: 'recipients.txt' }],
    });
    const webhook = deployment(objects, 'webhook');
    assert.ok(
      !(webhook.pod.volumes ?? []).some((v) => v.secret?.secretName === 'etcd-autobackup-age'),
      'the webhook does not mount it',
    );
    // What the worker reads at start from that path, with the Secret's content there.
    const dir = await tempDir('chart-age-secret');
    try {
      const local = join(dir.path, 'recipients.txt');
      await writeFile(local, recipientsText);
      assert.deepEqual(await loadRecipients({ ...config.encryption, recipientsFile: local }), [SECOND, AGE_EXAMPLE]);
    } finally {
      await dir.remove();
    }
  });

  test("identity for the worker's drills: encryption.ageIdentitySecret is mounted in the worker only (0440) and named as encryption.identityFiles", async () => {
    const { objects, worker, kc, config } = await workerWith([
      `encryption.ageRecipients[0]=${AGE_EXAMPLE}`,
      'encryption.ageIdentitySecret=etcd-autobackup-drill-identity',
    ]);
    assert.deepEqual(config.encryption.recipients, [AGE_EXAMPLE]);
    assert.deepEqual(config.encryption.identityFiles, ['/etc/etcd-autobackup/age-identity/identity.txt']);
    const file = config.encryption.identityFiles[0] ?? '';
    const mount = (kc.volumeMounts ?? []).find((m) => file.startsWith(`${m.mountPath}/`));
    assert.ok(mount, 'the identity is mounted in the worker');
    const volume = worker.pod.volumes?.find((v) => v.name === mount.name) as
      { secret?: { secretName: string; defaultMode?: number } } | undefined;
    assert.equal(volume?.secret?.secretName, 'etcd-autobackup-drill-identity');
    assert.equal(volume?.secret?.defaultMode, 0o440);
    const webhook = deployment(objects, 'webhook');
    assert.ok(
      !(webhook.pod.volumes ?? []).some((v) => v.secret?.secretName === 'etcd-autobackup-drill-identity'),
      'the webhook does not mount it',
    );
    const dir = await tempDir('chart-age-identity');
    try {
      const local = join(dir.path, 'identity.txt');
      execFileSync('age-keygen', ['-o', local], { stdio: 'ignore' });
      const identities = await loadIdentities([local]);
      assert.equal(identities?.count, 1);
    } finally {
      await dir.remove();
    }
  });

  test("drill Jobs of encrypted snapshots: the pod's CLI containers mount the worker's key and identity Secrets at the worker's paths", async () => {
    for (const set of [
      ['encryption.existingSecret=etcd-autobackup-key', 'encryption.decryptionKeys[0]=old'],
      [`encryption.ageRecipients[0]=${AGE_EXAMPLE}`, 'encryption.ageIdentitySecret=etcd-autobackup-drill-identity'],
    ]) {
      const { worker, kc, config } = await workerWith([
        'config.store.url=s3://acme-etcd-backups/drills',
        'config.drill.executor=job',
        ...set,
      ]);
      const files = [
        ...(config.encryption.keyFile ? [config.encryption.keyFile] : []),
        ...config.encryption.decryptionKeyFiles,
        ...config.encryption.identityFiles,
      ];
      assert.ok(files.length > 0, set.join(' '));
      const manifest = { id: '20261203T000000Z-r1-abcd', etcd: { version: '3.6.4' } } as Manifest;
      const pod = buildDrillJob(config, manifest, { name: 'd', namespace: NAMESPACE, nonce: 'n' }).spec?.template.spec;
      assert.ok(pod);
      const secretAt = (
        mounts: V1VolumeMount[] | undefined,
        volumes: readonly { name: string; secret?: { secretName?: string } }[] | undefined,
        file: string,
      ) => {
        const m = (mounts ?? []).find((v) => file.startsWith(`${v.mountPath}/`));
        return m && { secret: volumes?.find((v) => v.name === m.name)?.secret?.secretName, at: m.mountPath };
      };
      for (const file of files) {
        const inWorker = secretAt(kc.volumeMounts, worker.pod.volumes, file);
        assert.ok(inWorker?.secret, `${file} is a Secret in the worker`);
        for (const c of [pod.initContainers?.[0], pod.containers[0]])
          assert.deepEqual(secretAt(c?.volumeMounts, pod.volumes, file), inWorker, `${c?.name}: ${file}`);
        for (const c of (pod.initContainers ?? []).slice(1))
          assert.equal(secretAt(c.volumeMounts, pod.volumes, file), undefined, `${c.name} (etcd image) gets no key`);
      }
    }
  });

  test('job executor: a recipients Secret is refused (the Job would not mount it)', async () => {
    const job = await helm([
      'template',
      RELEASE,
      CHART,
      '--set',
      'config.executor.mode=job',
      '--set',
      'config.store.url=s3://b/p',
      '--set',
      'encryption.ageRecipientsSecret=etcd-autobackup-age',
    ]);
    assert.notEqual(job.code, 0);
    assert.match(job.stderr, /snapshot Job does not mount that Secret/);
  });
});
