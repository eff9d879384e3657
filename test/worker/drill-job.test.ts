/**
 * Drills as Kubernetes Jobs (drill.executor: job) against the fake Kubernetes API, which enforces
 * the chart's rendered worker Role. A stand-in kubelet runs the pod the worker asked for: it takes
 * the containers from the created Job spec and runs their commands in order, as local processes on
 * this machine, with their env: the `prepare` init container (our CLI), the `restore` init
 * container (the etcd image's etcdutl, or etcdctl for 3.4), the `etcd` native sidecar (kept running
 * in the background) and the main `check` container (our CLI), against a real etcd's snapshot in a
 * real file store. What it cannot run here: a real kubelet and container runtime, the upstream etcd
 * images (their command is run as the binary of that name on PATH: Debian's etcd 3.4, and for a
 * 3.6 manifest the etcdutl wrapper of test/support/etcdutl-wrapper.ts), the pod's own network
 * namespace (the ports are free loopback ports of this machine instead of 2379/2380) and the
 * emptyDir (the `/scratch` in the commands is a temp dir).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { V1Container, V1ContainerStatus, V1PodSpec } from '@kubernetes/client-node';
import { pino } from 'pino';
import { configSchema, type ConfigInput } from '../../core/config/index.js';
import { takeBackup } from '../../worker/backup.js';
import { readDrillRecord, runDrill, type DrillRecord } from '../../worker/drill.js';
import { buildDrillJob, etcdImageFor, runDrillJob } from '../../worker/drill-job.js';
import { manifestKey, type Manifest } from '../../worker/manifest.js';
import { FileStore } from '../../worker/stores/file.js';
import { schemaProblems } from '../support/chart-checks.js';
import { runCli } from '../support/cli.js';
import { fillEtcd, startEtcd, type EtcdServer } from '../support/etcd.js';
import { writeEtcdutlWrapper } from '../support/etcdutl-wrapper.js';
import { CHART, RELEASE, renderChart, type K8sObject } from '../support/helm.js';
import { FakeKubeApi, type KubeObject, type PolicyRule } from '../support/kube-api.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

const NS = 'backup';
const OUR_IMAGE = 'registry.local/etcd-autobackup:0.1.0';
const log = pino({ level: 'silent' });

let api: FakeKubeApi;
let source: EtcdServer;
let other: EtcdServer;
let work: { path: string; remove: () => Promise<void> };
let store: FileStore;
let wrapperBin: string;
let chartRules: PolicyRule[];
/** What the stand-in kubelet does with the next Job instead of running it. */
let nextPod: ((job: KubeObject) => void) | undefined;
const ranCommands: string[][] = [];

function configFor(over: ConfigInput = {}) {
  return configSchema.parse({
    cluster: 'prod-1',
    etcd: { endpoints: [source.endpoint] },
    store: { url: `file://${join(work.path, 'store')}` },
    executor: { image: OUR_IMAGE },
    ...over,
    drill: {
      executor: 'job',
      etcdImage: 'mirror.local/etcd/etcd:v{version}',
      freeSpaceMargin: 0,
      startTimeout: '60s',
      job: {
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'backup', effect: 'NoSchedule' }],
      },
      ...over.drill,
    },
  });
}

function statusOf(name: string, code: number | null): V1ContainerStatus {
  return {
    name,
    image: '',
    imageID: '',
    ready: false,
    restartCount: 0,
    state: { terminated: { exitCode: code ?? 137 } },
  };
}

/**
 * The container's Secret volumes, as the kubelet would mount them: the Secret's keys (from the fake
 * API) written as files at the mount path, which here is a path of this machine, for this container
 * only. Returns the undo.
 */
async function mountSecrets(c: V1Container, pod: V1PodSpec): Promise<() => Promise<void>> {
  const made: string[] = [];
  for (const m of c.volumeMounts ?? []) {
    const volume = pod.volumes?.find((v) => v.name === m.name)?.secret;
    if (!volume) continue;
    assert.equal(m.readOnly, true, `${c.name} mounts ${m.mountPath} read-only`);
    const secret = api.get('secrets', NS, volume.secretName ?? '') as { data?: Record<string, string> } | undefined;
    assert.ok(secret?.data, `Secret ${volume.secretName} exists`);
    const items = volume.items ?? Object.keys(secret.data).map((key) => ({ key, path: key }));
    await mkdir(m.mountPath, { recursive: true });
    made.push(m.mountPath);
    for (const item of items)
      await writeFile(join(m.mountPath, item.path), Buffer.from(secret.data[item.key] ?? '', 'base64'), {
        mode: volume.defaultMode ?? 0o644,
      });
  }
  return async () => {
    for (const dir of made) await rm(dir, { recursive: true, force: true });
  };
}

/** One container's command as a local process: our image is the CLI, the etcd image its binary by name. */
async function runContainer(
  c: V1Container,
  scratch: string,
  pod: V1PodSpec,
): Promise<{ code: number | null; out: string }> {
  const local = (s: string) => s.replaceAll('/scratch', scratch);
  const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? '']));
  const args = (c.args ?? []).map(local);
  if (c.image === OUR_IMAGE) {
    assert.equal(c.command, undefined, 'our image runs its own entrypoint');
    ranCommands.push([c.name, ...args]);
    const unmount = await mountSecrets(c, pod);
    try {
      const r = await runCli(args, { env, timeoutMs: 120_000 });
      return { code: r.code, out: r.stderr + r.stdout };
    } finally {
      await unmount();
    }
  }
  const child = spawnEtcdImage(c, scratch);
  const out: string[] = [];
  child.stderr?.on('data', (d: Buffer) => out.push(d.toString()));
  child.stdout?.on('data', (d: Buffer) => out.push(d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, out: out.join('') };
}

function spawnEtcdImage(c: V1Container, scratch: string): ChildProcess {
  const command = c.command?.[0] ?? '';
  assert.ok(command?.startsWith('/usr/local/bin/'), `${c.name}: an absolute command in the distroless image`);
  const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? '']));
  const args = (c.args ?? []).map((s) => s.replaceAll('/scratch', scratch));
  ranCommands.push([c.name, basename(command), ...args]);
  // The 3.6 image's etcdutl is the wrapper (first on PATH); its etcd is the Debian 3.4 one.
  const path = c.image?.endsWith(':v3.4.23') ? process.env.PATH : `${wrapperBin}:${process.env.PATH ?? ''}`;
  return spawn(basename(command), args, {
    env: { ...process.env, ...env, PATH: path },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** The kubelet and the Job controller for one drill pod: init containers in order, the sidecar, the main container. */
function kubelet(job: KubeObject): void {
  if (nextPod) {
    const instead = nextPod;
    nextPod = undefined;
    instead(job);
    return;
  }
  const name = job.metadata.name;
  const template = (job.spec as { template: { metadata: { labels: Record<string, string> }; spec: V1PodSpec } })
    .template;
  const podName = `${name}-${randomBytes(3).toString('hex')}`;
  void (async () => {
    api.put('pods', {
      metadata: { name: podName, namespace: NS, labels: template.metadata.labels },
      spec: template.spec,
      status: { phase: 'Pending' },
    });
    const scratch = await mkdtemp(join(work.path, 'scratch-'));
    const init: V1ContainerStatus[] = [];
    const main: V1ContainerStatus[] = [];
    let sidecar: ChildProcess | undefined;
    let ok = true;
    const logs: string[] = [];
    try {
      for (const c of template.spec.initContainers ?? []) {
        if (c.restartPolicy === 'Always') {
          sidecar = spawnEtcdImage(c, scratch);
          continue;
        }
        const r = await runContainer(c, scratch, template.spec);
        logs.push(r.out);
        init.push(statusOf(c.name, r.code));
        if (r.code !== 0) {
          ok = false;
          break;
        }
      }
      if (ok) {
        const c = template.spec.containers[0] as V1Container;
        const r = await runContainer(c, scratch, template.spec);
        logs.push(r.out);
        main.push(statusOf(c.name, r.code));
        ok = r.code === 0;
      }
    } finally {
      // The main container exited: Kubernetes stops the sidecar, and the pod's emptyDir goes.
      if (sidecar && sidecar.exitCode === null) {
        const gone = new Promise((r) => sidecar?.once('close', r));
        sidecar.kill('SIGTERM');
        await gone;
      }
      await rm(scratch, { recursive: true, force: true });
    }
    api.setLog(NS, podName, logs.join(''));
    api.modify('pods', NS, podName, (p) => {
      p.status = {
        phase: ok ? 'Succeeded' : 'Failed',
        initContainerStatuses: init,
        containerStatuses: main,
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
  })();
}

async function chartWorkerRole(): Promise<PolicyRule[]> {
  const objects = await renderChart([join(CHART, 'ci/drill-job-values.yaml')]);
  const role = objects.find((o) => o.kind === 'Role' && o.metadata.name === `${RELEASE}-etcd-autobackup-worker`);
  assert.ok(role, 'the chart renders no worker Role');
  return (role as K8sObject & { rules: PolicyRule[] }).rules;
}

/** A copy of `m` under a new id, its facts replaced by `over` (e.g. the etcd version). */
async function publishCopy(m: Manifest, over: Partial<Manifest>): Promise<Manifest> {
  const copy: Manifest = { ...m, id: `${m.id.slice(0, -4)}${randomBytes(2).toString('hex')}`, ...over };
  await store.put(manifestKey(copy.cluster, copy.id), Readable.from([JSON.stringify(copy)]), {});
  return copy;
}

async function drill(manifest: Manifest, over: ConfigInput = {}): Promise<DrillRecord> {
  return runDrillJob({
    config: configFor(over),
    store,
    kube: api.kubeConfig(NS),
    namespace: NS,
    manifest,
    log,
    retryDelayMs: 50,
    graceMs: 5_000,
    ports: { client: await freePort(), peer: await freePort() },
  });
}

let good: Manifest;

before(async () => {
  [api, source, other, work, chartRules] = await Promise.all([
    FakeKubeApi.start(),
    startEtcd(),
    startEtcd(),
    tempDir('drill-job'),
    chartWorkerRole(),
  ]);
  api.rbac = chartRules;
  api.onCreate('jobs', kubelet);
  wrapperBin = (await writeEtcdutlWrapper(join(work.path, 'etcdutl'))).bin;
  store = new FileStore(join(work.path, 'store'));
  await fillEtcd(source.client, 120, 32, '/registry/pods/ns/');
  await fillEtcd(source.client, 30, 32, '/registry/secrets/ns/');
  await fillEtcd(other.client, 200, 32, '/registry/pods/ns/');
  good = await takeBackup({ config: configFor(), store, log, cause: { source: 'manual' } });
});

after(async () => {
  await Promise.all([api?.close(), source?.stop(), other?.stop()]);
  await work?.remove();
});

describe('the drill Job spec', () => {
  test("images from the manifest's version and the template; the commands, in order; no shell anywhere", () => {
    const m36 = { ...good, etcd: { ...good.etcd, version: '3.6.4' } };
    const job = buildDrillJob(configFor(), m36, { name: 'd', namespace: NS, nonce: 'n1' });
    assert.deepEqual(schemaProblems([job as unknown as K8sObject]), [], 'a valid batch/v1 Job');
    const pod = job.spec?.template.spec;
    assert.ok(pod);
    const [prepare, restore, etcd] = pod.initContainers ?? [];
    const check = pod.containers[0];
    assert.deepEqual(
      [prepare?.image, restore?.image, etcd?.image, check?.image],
      [OUR_IMAGE, 'mirror.local/etcd/etcd:v3.6.4', 'mirror.local/etcd/etcd:v3.6.4', OUR_IMAGE],
    );
    assert.deepEqual(prepare?.args?.slice(0, 3), ['drill-prepare', good.id, '--scratch']);
    assert.deepEqual(restore?.command, ['/usr/local/bin/etcdutl']);
    assert.deepEqual(restore?.args?.slice(0, 5), [
      'snapshot',
      'restore',
      '/scratch/snapshot.db',
      '--data-dir',
      '/scratch/data',
    ]);
    assert.equal(restore?.env, undefined);
    assert.deepEqual(etcd?.command, ['/usr/local/bin/etcd']);
    assert.equal(etcd?.restartPolicy, 'Always', 'etcd is a native sidecar: it runs beside the main container');
    assert.ok(etcd?.args?.includes('http://127.0.0.1:2379'), 'etcd listens on the pod loopback only');
    assert.equal(check?.args?.[0], 'drill-check');
    for (const c of [...(pod.initContainers ?? []), ...pod.containers])
      assert.ok(!['sh', 'bash', '/bin/sh'].includes(c.command?.[0] ?? ''), `${c.name} needs no shell`);

    const m34 = buildDrillJob(configFor(), good, { name: 'd', namespace: NS, nonce: 'n1' });
    const restore34 = m34.spec?.template.spec?.initContainers?.[1];
    assert.equal(restore34?.image, `mirror.local/etcd/etcd:v${good.etcd.version}`);
    assert.deepEqual(restore34?.command, ['/usr/local/bin/etcdctl']);
    assert.deepEqual(restore34?.env, [{ name: 'ETCDCTL_API', value: '3' }]);
    assert.equal(
      etcdImageFor('gcr.io/etcd-development/etcd:v{version}', '3.5.21'),
      'gcr.io/etcd-development/etcd:v3.5.21',
    );
    assert.throws(() => etcdImageFor('x:{version}', '3.6.0; rm -rf'), /not a version/);
  });

  test('placement as configured, never the host network, hardened like the snapshot Job, bounded scratch', () => {
    const job = buildDrillJob(configFor(), good, { name: 'd', namespace: NS, nonce: 'n1' });
    const pod = job.spec?.template.spec;
    assert.ok(pod);
    assert.equal(pod.hostNetwork, false);
    assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/os': 'linux' });
    assert.deepEqual(pod.tolerations, [{ key: 'dedicated', operator: 'Equal', value: 'backup', effect: 'NoSchedule' }]);
    assert.equal(job.spec?.backoffLimit, 0);
    assert.equal(job.spec?.activeDeadlineSeconds, 1800);
    assert.deepEqual(pod.securityContext?.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(pod.securityContext?.fsGroup, 65532);
    assert.equal(pod.automountServiceAccountToken, false);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      assert.equal(c.securityContext?.readOnlyRootFilesystem, true, c.name);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, c.name);
      assert.equal(c.securityContext?.runAsNonRoot, true, c.name);
      assert.deepEqual(c.securityContext?.capabilities, { drop: ['ALL'] }, c.name);
      assert.ok(c.resources?.limits?.memory, `${c.name} has a memory limit`);
      for (const m of c.volumeMounts ?? [])
        assert.ok(
          pod.volumes?.find((v) => v.name === m.name)?.emptyDir?.sizeLimit,
          `${c.name} ${m.mountPath} is bounded`,
        );
    }
    assert.equal(pod.volumes?.find((v) => v.name === 'scratch')?.emptyDir?.sizeLimit, '4Gi');
  });

  test("encryption: the key and identity Secrets are mounted read-only at the worker's paths into our containers only", () => {
    const config = configFor({
      executor: { image: OUR_IMAGE, configMap: 'etcd-autobackup' },
      encryption: {
        keyFile: '/etc/etcd-autobackup/encryption/key',
        decryptionKeyFiles: ['/etc/etcd-autobackup/encryption/old'],
        identityFiles: ['/etc/etcd-autobackup/age-identity/identity.txt'],
      },
      drill: {
        job: {
          secretMounts: [
            { secretName: 'aes-key', mountPath: '/etc/etcd-autobackup/encryption' },
            {
              secretName: 'drill-identity',
              mountPath: '/etc/etcd-autobackup/age-identity',
              items: [{ key: 'identity.txt', path: 'identity.txt' }],
              defaultMode: 288,
            },
          ],
        },
      },
    });
    const job = buildDrillJob(config, good, { name: 'd', namespace: NS, nonce: 'n1' });
    assert.deepEqual(schemaProblems([job as unknown as K8sObject]), [], 'a valid batch/v1 Job');
    const pod = job.spec?.template.spec;
    assert.ok(pod);
    const secretOf = (c: V1Container | undefined) =>
      (c?.volumeMounts ?? []).flatMap((m) => {
        const secret = pod.volumes?.find((v) => v.name === m.name)?.secret;
        return secret ? [{ secret: secret.secretName, at: m.mountPath, readOnly: m.readOnly }] : [];
      });
    const [prepare, restore, etcd] = pod.initContainers ?? [];
    const expected = [
      { secret: 'aes-key', at: '/etc/etcd-autobackup/encryption', readOnly: true },
      { secret: 'drill-identity', at: '/etc/etcd-autobackup/age-identity', readOnly: true },
    ];
    assert.deepEqual(secretOf(prepare), expected);
    assert.deepEqual(secretOf(pod.containers[0]), expected);
    assert.deepEqual(secretOf(restore), [], "the etcd image's containers get no key");
    assert.deepEqual(secretOf(etcd), [], "the etcd image's containers get no key");
    const identity = pod.volumes?.find((v) => v.secret?.secretName === 'drill-identity')?.secret;
    assert.deepEqual(identity?.items, [{ key: 'identity.txt', path: 'identity.txt' }]);
    assert.equal(identity?.defaultMode, 288);
    // The CLI is told the worker's own paths, and each lies in a mounted Secret.
    const env = Object.fromEntries((prepare?.env ?? []).map((e) => [e.name, e.value]));
    assert.equal(env.ETCD_AUTOBACKUP_ENCRYPTION_KEY_FILE, '/etc/etcd-autobackup/encryption/key');
    assert.equal(env.ETCD_AUTOBACKUP_DECRYPTION_KEY_FILES, '/etc/etcd-autobackup/encryption/old');
    assert.equal(env.ETCD_AUTOBACKUP_IDENTITY, '/etc/etcd-autobackup/age-identity/identity.txt');
    assert.equal(env.ETCD_AUTOBACKUP_AGE_RECIPIENTS, undefined, 'recipients only write: not passed');
    for (const file of [config.encryption.keyFile ?? '', ...config.encryption.identityFiles])
      assert.ok(
        expected.some((m) => file.startsWith(`${m.at}/`)),
        `${file} is inside a mounted Secret`,
      );
    // The config file alone: a ConfigMap volume over the whole folder could hold no mount points below it.
    const config0 = prepare?.volumeMounts?.find((m) => m.name === 'config');
    assert.deepEqual(
      [config0?.mountPath, config0?.subPath, config0?.readOnly],
      ['/etc/etcd-autobackup/config.yaml', 'config.yaml', true],
    );
    assert.deepEqual(prepare?.args?.slice(-2), ['--config', '/etc/etcd-autobackup/config.yaml']);
  });

  test('config: executor.image is required for drill Jobs, and the image template must hold {version}', () => {
    assert.throws(
      () => configSchema.parse({ drill: { executor: 'job' } }),
      /executor.image is required when drill.executor is job/,
    );
    assert.throws(() => configSchema.parse({ drill: { etcdImage: 'etcd:latest' } }), /\{version\}/);
    const mountAt = (mountPath: string) => () =>
      configSchema.parse({ drill: { job: { secretMounts: [{ secretName: 'k', mountPath }] } } });
    assert.throws(mountAt('/scratch/'), /a folder of its own/);
    assert.throws(mountAt('keys'), /expected an absolute path/);
    assert.doesNotThrow(mountAt('/etc/etcd-autobackup/encryption'));
  });
});

describe('the pod run as local processes, with the chart Role enforced', () => {
  test('a good snapshot (etcd 3.4 manifest): every check passes and the pod stored the record', async () => {
    ranCommands.length = 0;
    const record = await drill(good);
    assert.equal(record.ok, true, record.failure);
    assert.deepEqual(
      record.checks.map((c) => [c.name, c.ok]),
      [
        ['free-space', true],
        ['download', true],
        ['restore', true],
        ['start', true],
        ['linearizable-read', true],
        ['revision', true],
        ['hashkv', true],
        ['key-counts', true],
      ],
    );
    assert.equal(record.executor?.kind, 'job');
    assert.deepEqual(
      await readDrillRecord(store, good.cluster, good.id),
      record,
      'the record the check container stored',
    );
    assert.deepEqual(
      ranCommands.map((c) => c.slice(0, 2)),
      [
        ['prepare', 'drill-prepare'],
        ['restore', 'etcdctl'],
        ['etcd', 'etcd'],
        ['check', 'drill-check'],
      ],
    );
    assert.deepEqual(api.problems, []);
  });

  test('a 3.6 manifest: restored by etcdutl (the wrapper checks its documented argv), passes', async () => {
    const m36 = await publishCopy(good, { etcd: { ...good.etcd, version: '3.6.4' } });
    ranCommands.length = 0;
    const record = await drill(m36);
    assert.equal(record.ok, true, record.failure);
    assert.equal(record.etcdVersion, '3.6.4');
    assert.deepEqual(ranCommands[1]?.slice(0, 3), ['restore', 'etcdutl', 'snapshot']);
    assert.equal(record.executor?.kind === 'job' ? record.executor.etcdImage : '', 'mirror.local/etcd/etcd:v3.6.4');
    assert.deepEqual(api.problems, []);
  });

  test("another etcd's snapshot under a copied manifest fails on revision, HashKV and counts", async () => {
    const foreign = await takeBackup({
      config: configFor({ etcd: { endpoints: [other.endpoint] } }),
      store,
      log,
      cause: { source: 'manual' },
    });
    const forged = await publishCopy(good, {
      key: foreign.key,
      sha256: foreign.sha256,
      dbSize: foreign.dbSize,
      snapshotSize: foreign.snapshotSize,
      storedSize: foreign.storedSize,
    });
    const record = await drill(forged);
    assert.equal(record.ok, false);
    const by = (n: string) => record.checks.find((c) => c.name === n);
    for (const n of ['download', 'restore', 'start', 'linearizable-read']) assert.equal(by(n)?.ok, true, n);
    for (const n of ['revision', 'hashkv', 'key-counts']) assert.equal(by(n)?.ok, false, n);
    assert.match(by('key-counts')?.detail ?? '', /\/registry\/pods\/: 150 keys, expected 120/);
    assert.deepEqual(api.problems, []);
  });

  test('a corrupted object fails in the prepare container, which stores the failed record; the restore never runs', async () => {
    const bad = await publishCopy(good, { sha256: 'ab'.repeat(32) });
    ranCommands.length = 0;
    const record = await drill(bad);
    assert.equal(record.ok, false);
    assert.match(record.failure ?? '', /^download: /);
    assert.deepEqual(
      ranCommands.map((c) => c[0]),
      ['prepare'],
    );
  });
});

describe('encrypted snapshots', () => {
  test('AES keyfile: the key Secret mounted at the worker path decrypts in the pod; without the mount the pod records why', async () => {
    const keyDir = join(work.path, 'etc/encryption');
    const keyFile = join(keyDir, 'key');
    const key = randomBytes(32);
    await mkdir(keyDir, { recursive: true });
    await writeFile(keyFile, key);
    const encrypted = { encryption: { keyFile } };
    const manifest = await takeBackup({ config: configFor(encrypted), store, log, cause: { source: 'manual' } });
    assert.ok(manifest.transforms.includes('encrypt-aes-256-gcm'), manifest.transforms.join(','));
    // From here the key exists only in the Secret, as in a cluster: only a mount can give it to the pod.
    await rm(keyDir, { recursive: true });
    api.put('secrets', {
      metadata: { name: 'etcd-autobackup-key', namespace: NS },
      data: { key: key.toString('base64') },
    });
    ranCommands.length = 0;
    const record = await drill(manifest, {
      ...encrypted,
      drill: { job: { secretMounts: [{ secretName: 'etcd-autobackup-key', mountPath: keyDir }] } },
    });
    assert.equal(record.ok, true, record.failure);
    assert.equal(record.checks.find((c) => c.name === 'download')?.ok, true);
    assert.deepEqual(
      ranCommands.map((c) => c[0]),
      ['prepare', 'restore', 'etcd', 'check'],
    );
    assert.deepEqual(await readDrillRecord(store, manifest.cluster, manifest.id), record);

    const unmounted = await drill(manifest, encrypted);
    assert.equal(unmounted.ok, false);
    assert.match(
      unmounted.failure ?? '',
      /^download: the drill pod cannot read its keys: .*encryption\.keyFile.*drill\.job\.secretMounts/,
    );
    assert.deepEqual(
      await readDrillRecord(store, manifest.cluster, manifest.id),
      unmounted,
      'the prepare step stored it',
    );
    assert.deepEqual(api.problems, []);
  });

  test('age with only recipients on the worker: a failed drill with the reason, no Job created, as a local drill records it', async () => {
    const aged = await publishCopy(good, {
      transforms: [...good.transforms, 'age'],
      age: {
        format: 'age-encryption.org/v1',
        recipients: ['age1t070sjcuqk44tuycfq0c7l5jj6kk99f7n3jcf0y5j4gd8srdpelqrrhmqd'],
      },
    });
    const created = api.requestsOf('create', 'jobs').length;
    const record = await drill(aged);
    assert.equal(record.ok, false);
    assert.match(
      record.failure ?? '',
      /^download: no age identity: set encryption\.identityFiles \(a drill identity\) or drill elsewhere, docs\/encryption\.md/,
    );
    assert.equal(api.requestsOf('create', 'jobs').length, created, 'no pod for what it cannot decrypt');
    const local = await runDrill({
      store,
      manifest: aged,
      etcdctl: 'etcdctl',
      etcd: 'etcd',
      scratchDir: join(work.path, 'local-drills'),
      startTimeoutMs: 60_000,
      freeSpaceMargin: 0,
      log,
    });
    assert.equal(local.failure, record.failure, 'the local executor records the same');
  });
});

describe('Job failures are failed drills with the reason', () => {
  test('a pod that never started (image pull): the Job fails and the record names the container and why', async () => {
    nextPod = (job) => {
      const name = job.metadata.name;
      const labels = (job.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata
        .labels;
      api.put('pods', {
        metadata: { name: `${name}-x`, namespace: NS, labels },
        status: {
          phase: 'Pending',
          initContainerStatuses: [
            {
              name: 'prepare',
              image: '',
              imageID: '',
              ready: false,
              restartCount: 0,
              state: { terminated: { exitCode: 0 } },
            },
            {
              name: 'restore',
              image: '',
              imageID: '',
              ready: false,
              restartCount: 0,
              state: { waiting: { reason: 'ErrImagePull', message: 'mirror.local/etcd/etcd:v3.4.23: not found' } },
            },
          ],
        },
      });
      api.modify('jobs', NS, name, (j) => {
        j.status = {
          failed: 1,
          conditions: [
            {
              type: 'Failed',
              status: 'True',
              reason: 'DeadlineExceeded',
              message: 'Job was active longer than specified deadline',
            },
          ],
        };
      });
    };
    const record = await drill(good);
    assert.equal(record.ok, false);
    assert.match(
      record.failure ?? '',
      /^job: Job backup\/etcd-drill-prod-1-\w+ failed \(DeadlineExceeded: .*\); pod .*: init container restore ErrImagePull: mirror.local/,
    );
  });

  test('a Job deleted while the worker waits is a failed drill that says so', async () => {
    nextPod = (job) => setTimeout(() => api.remove('jobs', NS, job.metadata.name), 100);
    const record = await drill(good);
    assert.equal(record.ok, false);
    assert.match(record.failure ?? '', /^job: .*(was deleted|disappeared) while the worker waited/);
  });

  test('without the Role permission the drill fails naming it', async () => {
    api.rbac = chartRules.map((r) =>
      r.resources.includes('jobs') ? { ...r, verbs: r.verbs.filter((v) => v !== 'create') } : r,
    );
    try {
      const record = await drill(good);
      assert.equal(record.ok, false);
      assert.match(record.failure ?? '', /creating Job .* failed: HTTP 403 Forbidden: .*cannot create resource "jobs"/);
      assert.match(record.failure ?? '', /needs create on jobs.batch/);
    } finally {
      api.rbac = chartRules;
      api.problems.length = 0;
    }
  });

  test("the chart's Role grants the drill Jobs' calls only when drill.executor is job", async () => {
    const objects = await renderChart([]);
    const role = objects.find((o) => o.kind === 'Role' && o.metadata.name === `${RELEASE}-etcd-autobackup-worker`) as
      (K8sObject & { rules: PolicyRule[] }) | undefined;
    assert.ok(role);
    assert.ok(!role.rules.some((r) => r.resources.includes('jobs')));
    assert.ok(chartRules.some((r) => r.resources.includes('jobs') && r.verbs.includes('create')));
  });
});
