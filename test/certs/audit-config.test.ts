import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { auditPolicy } from '../../certs/audit-config.js';
import { createCa } from '../../certs/pki.js';
import { configSchema } from '../../core/config/index.js';
import { runCli, runCliOk } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

interface Rule {
  level: string;
  verbs?: string[];
  resources?: { group?: string; resources?: string[] }[];
  nonResourceURLs?: string[];
  omitStages?: string[];
}
interface Event {
  auditID: string;
  verb: string;
  stage: string;
  objectRef?: { resource?: string; subresource?: string; apiGroup?: string };
  requestURI: string;
}

/** The apiserver's rule matching, reduced to what the policy uses: first rule that matches wins. */
function levelOf(policy: { rules: Rule[]; omitStages?: string[] }, e: Event): string {
  if (policy.omitStages?.includes(e.stage)) return 'None';
  for (const r of policy.rules) {
    if (r.verbs && !r.verbs.includes(e.verb)) continue;
    if (r.nonResourceURLs && e.objectRef) continue;
    if (r.resources) {
      const ref = e.objectRef;
      if (!ref) continue;
      const name = ref.subresource ? `${ref.resource ?? ''}/${ref.subresource}` : (ref.resource ?? '');
      const hit = r.resources.some(
        (g) =>
          (g.group ?? '') === (ref.apiGroup ?? '') &&
          (g.resources ?? []).some((x) => x === name || (x.startsWith('*/') && ref.subresource === x.slice(2))),
      );
      if (!hit) continue;
    }
    if (r.omitStages?.includes(e.stage)) return 'None';
    return r.level;
  }
  return 'None';
}

let dir: { path: string; remove: () => Promise<void> };
let caFile: string;
const ca = createCa('webhook serving CA');

before(async () => {
  dir = await tempDir('audit-config');
  caFile = join(dir.path, 'ca.crt');
  await writeFile(caFile, ca.cert);
});
after(async () => {
  await dir.remove();
});

describe('audit policy', () => {
  test('keeps the writes of the shared fixture at Metadata level and drops reads and noisy resources', async () => {
    const policy = auditPolicy(configSchema.parse({}).filters) as { rules: Rule[]; omitStages: string[] };
    const events = (
      JSON.parse(await readFile(new URL('../fixtures/audit-eventlist-mixed.json', import.meta.url), 'utf8')) as {
        items: Event[];
      }
    ).items;
    const levels = new Map(events.map((e) => [`${e.auditID}@${e.stage}`, levelOf(policy, e)]));
    const at = (id: string, stage = 'ResponseComplete') =>
      levels.get(`1f0c3a7e-2b4d-4a43-9a55-1f1f8a2f0a0${id}@${stage}`);
    for (const id of ['1', '2', '6', '7', '8']) assert.equal(at(id), 'Metadata', `write ${id} is sent`);
    assert.equal(at('2', 'RequestReceived'), 'None', 'RequestReceived is omitted');
    assert.equal(at('3'), 'None', 'get is dropped');
    assert.equal(at('4'), 'None', 'leases are dropped');
    assert.equal(at('5'), 'None', 'events are dropped');
    assert.equal(
      levelOf(policy, {
        auditID: 'x',
        verb: 'create',
        stage: 'ResponseComplete',
        objectRef: { resource: 'tokenreviews', apiGroup: 'authentication.k8s.io' },
        requestURI: '',
      }),
      'None',
    );
    assert.equal(
      levelOf(policy, {
        auditID: 'x',
        verb: 'create',
        stage: 'ResponseComplete',
        objectRef: { resource: 'pods', subresource: 'exec' },
        requestURI: '',
      }),
      'None',
    );
    assert.equal(
      levelOf(policy, {
        auditID: 'x',
        verb: 'update',
        stage: 'ResponseComplete',
        objectRef: { resource: 'deployments', subresource: 'scale', apiGroup: 'apps' },
        requestURI: '',
      }),
      'Metadata',
    );
  });
});

describe('etcd-autobackup audit-config', () => {
  test('--out writes the policy, a kubeconfig with a generated client certificate, the flags and the kubeadm snippet', async () => {
    const out = join(dir.path, 'out');
    const r = await runCliOk([
      'audit-config',
      '--server',
      'https://10.96.0.50',
      '--ca-file',
      caFile,
      '--tls-server-name',
      'eab-webhook.backup.svc',
      '--out',
      out,
    ]);
    assert.match(r.stdout, /wrote 6 files/);

    const policy = parse(await readFile(join(out, 'policy.yaml'), 'utf8')) as Record<string, unknown>;
    assert.equal(policy.apiVersion, 'audit.k8s.io/v1');
    assert.equal(policy.kind, 'Policy');
    assert.deepEqual(policy.omitStages, ['RequestReceived']);

    const kc = parse(await readFile(join(out, 'webhook-kubeconfig.yaml'), 'utf8')) as {
      apiVersion: string;
      kind: string;
      clusters: { cluster: Record<string, string> }[];
      users: { user: Record<string, string> }[];
      'current-context': string;
      contexts: { name: string }[];
    };
    assert.equal(kc.apiVersion, 'v1');
    assert.equal(kc.kind, 'Config');
    assert.equal(kc.clusters[0]?.cluster.server, 'https://10.96.0.50/audit');
    assert.equal(kc.clusters[0]?.cluster['tls-server-name'], 'eab-webhook.backup.svc');
    assert.equal(
      Buffer.from(kc.clusters[0]?.cluster['certificate-authority-data'] ?? '', 'base64').toString(),
      ca.cert,
    );
    assert.equal(kc.contexts[0]?.name, kc['current-context']);
    const clientCert = new X509Certificate(Buffer.from(kc.users[0]?.user['client-certificate-data'] ?? '', 'base64'));
    const clientCa = new X509Certificate(await readFile(join(out, 'audit-client-ca.crt')));
    assert.ok(
      clientCert.verify(clientCa.publicKey),
      'the client certificate is signed by the CA the webhook is to trust',
    );
    assert.ok(kc.users[0]?.user['client-key-data']);
    assert.equal(
      (await stat(join(out, 'webhook-kubeconfig.yaml'))).mode & 0o777,
      0o600,
      'a kubeconfig with a key is private',
    );
    assert.equal((await stat(join(out, 'audit-client-ca.key'))).mode & 0o777, 0o600);

    const flags = (await readFile(join(out, 'kube-apiserver-flags.txt'), 'utf8')).trim().split('\n');
    assert.ok(flags.includes('--audit-policy-file=/etc/kubernetes/audit/policy.yaml'));
    assert.ok(flags.includes('--audit-webhook-config-file=/etc/kubernetes/audit/webhook-kubeconfig.yaml'));
    assert.ok(flags.some((f) => f.startsWith('--audit-webhook-batch-max-size=')));
    assert.ok(flags.some((f) => f.startsWith('--audit-webhook-batch-max-wait=')));

    const kubeadm = parse(await readFile(join(out, 'kubeadm-clusterconfiguration.yaml'), 'utf8')) as {
      apiVersion: string;
      kind: string;
      apiServer: {
        extraArgs: { name: string; value: string }[];
        extraVolumes: { hostPath: string; mountPath: string; readOnly: boolean }[];
      };
    };
    assert.equal(kubeadm.apiVersion, 'kubeadm.k8s.io/v1beta4');
    assert.equal(kubeadm.kind, 'ClusterConfiguration');
    assert.deepEqual(
      kubeadm.apiServer.extraArgs.map((a) => `--${a.name}=${a.value}`),
      flags,
    );
    assert.deepEqual(kubeadm.apiServer.extraVolumes[0] && { ...kubeadm.apiServer.extraVolumes[0] }, {
      name: 'etcd-autobackup-audit',
      hostPath: '/etc/kubernetes/audit',
      mountPath: '/etc/kubernetes/audit',
      readOnly: true,
      pathType: 'DirectoryOrCreate',
    });
  });

  test('token mode references the token file and never prints a token; --print gives one parseable part', async () => {
    const r = await runCliOk([
      'audit-config',
      '--server',
      'https://eab-webhook.backup.svc/audit',
      '--ca-file',
      caFile,
      '--auth',
      'token',
      '--token-file',
      '/etc/kubernetes/audit/token',
      '--print',
      'kubeconfig',
    ]);
    const kc = parse(r.stdout) as { users: { user: Record<string, string> }[] };
    assert.deepEqual(kc.users[0]?.user, { tokenFile: '/etc/kubernetes/audit/token' });
    const v3 = await runCliOk([
      'audit-config',
      '--server',
      'https://x.y.svc',
      '--ca-file',
      caFile,
      '--auth',
      'none',
      '--kubeadm-api',
      'v1beta3',
      '--print',
      'kubeadm',
    ]);
    const snippet = parse(v3.stdout) as { apiServer: { extraArgs: Record<string, string> } };
    assert.equal(snippet.apiServer.extraArgs['audit-policy-file'], '/etc/kubernetes/audit/policy.yaml');
  });

  test('wrong input is a usage error naming the option', async () => {
    const http = await runCli(['audit-config', '--server', 'http://10.0.0.1', '--ca-file', caFile, '--auth', 'none']);
    assert.equal(http.code, 2);
    assert.match(http.stderr, /--server must be https/);
    const noCert = await runCli(['audit-config', '--server', 'https://10.0.0.1', '--ca-file', caFile]);
    assert.equal(noCert.code, 2);
    assert.match(noCert.stderr, /--client-cert/);
    const noCa = await runCli([
      'audit-config',
      '--server',
      'https://10.0.0.1',
      '--ca-file',
      join(dir.path, 'missing.crt'),
      '--auth',
      'none',
    ]);
    assert.equal(noCa.code, 2);
    assert.match(noCa.stderr, /--ca-file/);
  });
});
