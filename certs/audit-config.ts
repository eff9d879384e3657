/**
 * What an operator puts on each control-plane node so that the kube-apiserver sends its writes to
 * the audit endpoint: the audit policy, the audit webhook kubeconfig, the kube-apiserver flags and
 * the same as a kubeadm ClusterConfiguration snippet. Pure: `audit-config` does the file I/O.
 */
import { stringify } from 'yaml';
import type { Config } from '../core/config/index.js';

export const WRITE_VERBS = ['create', 'update', 'patch', 'delete', 'deletecollection'] as const;
export const READ_VERBS = ['get', 'list', 'watch'] as const;

/** Requests to the API that change nothing worth a snapshot, however often they come. */
const REVIEWS = [
  { group: 'authentication.k8s.io', resources: ['tokenreviews', 'selfsubjectreviews'] },
  {
    group: 'authorization.k8s.io',
    resources: [
      'subjectaccessreviews',
      'selfsubjectaccessreviews',
      'localsubjectaccessreviews',
      'selfsubjectrulesreviews',
    ],
  },
];

export interface AuditConfigOptions {
  /** URL of the audit endpoint as the apiserver reaches it, e.g. https://10.96.0.50/audit. */
  server: string;
  /** PEM of the CA that signed the webhook's serving certificate. */
  caPem: string;
  /** Name to check the serving certificate against when `server` uses an IP (the Service's DNS name). */
  tlsServerName?: string | undefined;
  auth:
    | { mode: 'cert'; certPath: string; keyPath: string; certPem?: string; keyPem?: string }
    | { mode: 'token'; tokenPath: string }
    | { mode: 'none' };
  /** Directory on the node holding the policy and kubeconfig; mounted into the apiserver pod. */
  nodeDir: string;
  batchMaxSize: number;
  batchMaxWait: string;
  kubeadmApiVersion: 'v1beta3' | 'v1beta4';
}

type GroupResources = { group: string; resources: string[] };

/** `group/resource` (or `resource` for the core group) from filters.ignoreResources as policy entries. */
function groupResources(list: readonly string[]): GroupResources[] {
  const byGroup = new Map<string, string[]>();
  for (const item of list) {
    const slash = item.lastIndexOf('/');
    const group = slash < 0 ? '' : item.slice(0, slash);
    const resource = slash < 0 ? item : item.slice(slash + 1);
    byGroup.set(group, [...(byGroup.get(group) ?? []), resource]);
  }
  return [...byGroup.entries()].map(([group, resources]) => ({ group, resources }));
}

/** audit.k8s.io/v1 Policy: writes at Metadata level; reads, noisy resources and subresources dropped. */
export function auditPolicy(
  filters: Pick<Config['filters'], 'ignoreResources' | 'ignoreSubresources'>,
): Record<string, unknown> {
  return {
    apiVersion: 'audit.k8s.io/v1',
    kind: 'Policy',
    // One event per request, when it completed: RequestReceived would double the traffic for nothing.
    omitStages: ['RequestReceived'],
    rules: [
      { level: 'None', verbs: [...READ_VERBS] },
      { level: 'None', resources: [...groupResources(filters.ignoreResources), ...REVIEWS] },
      { level: 'None', resources: [{ group: '', resources: filters.ignoreSubresources.map((s) => `*/${s}`) }] },
      { level: 'None', nonResourceURLs: ['/*'] },
      // Metadata is enough to tell that something changed; request bodies may hold Secret data.
      { level: 'Metadata', verbs: [...WRITE_VERBS], omitStages: ['RequestReceived', 'ResponseStarted'] },
      { level: 'None' },
    ],
  };
}

export function auditKubeconfig(o: AuditConfigOptions): Record<string, unknown> {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  let user: Record<string, string> = {};
  if (o.auth.mode === 'cert') {
    user =
      o.auth.certPem && o.auth.keyPem
        ? { 'client-certificate-data': b64(o.auth.certPem), 'client-key-data': b64(o.auth.keyPem) }
        : { 'client-certificate': o.auth.certPath, 'client-key': o.auth.keyPath };
  } else if (o.auth.mode === 'token') {
    // A file reference, so that the token itself is never printed.
    user = { tokenFile: o.auth.tokenPath };
  }
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'etcd-autobackup',
        cluster: {
          server: o.server,
          'certificate-authority-data': b64(o.caPem),
          ...(o.tlsServerName ? { 'tls-server-name': o.tlsServerName } : {}),
        },
      },
    ],
    users: [{ name: 'kube-apiserver-audit', user }],
    contexts: [{ name: 'etcd-autobackup', context: { cluster: 'etcd-autobackup', user: 'kube-apiserver-audit' } }],
    'current-context': 'etcd-autobackup',
  };
}

export function nodePaths(o: Pick<AuditConfigOptions, 'nodeDir'>): { policy: string; kubeconfig: string } {
  const dir = o.nodeDir.replace(/\/+$/, '');
  return { policy: `${dir}/policy.yaml`, kubeconfig: `${dir}/webhook-kubeconfig.yaml` };
}

/** kube-apiserver flags as name/value pairs (without the leading dashes). */
export function apiserverArgs(o: AuditConfigOptions): [string, string][] {
  const paths = nodePaths(o);
  return [
    ['audit-policy-file', paths.policy],
    ['audit-webhook-config-file', paths.kubeconfig],
    ['audit-webhook-version', 'audit.k8s.io/v1'],
    ['audit-webhook-mode', 'batch'],
    ['audit-webhook-batch-max-size', String(o.batchMaxSize)],
    ['audit-webhook-batch-max-wait', o.batchMaxWait],
    // Retries of a failed batch back off from here; the endpoint answers fast, so keep it short.
    ['audit-webhook-initial-backoff', '5s'],
  ];
}

export function apiserverFlags(o: AuditConfigOptions): string[] {
  return apiserverArgs(o).map(([k, v]) => `--${k}=${v}`);
}

export function kubeadmSnippet(o: AuditConfigOptions): Record<string, unknown> {
  const args = apiserverArgs(o);
  const dir = o.nodeDir.replace(/\/+$/, '');
  return {
    apiVersion: `kubeadm.k8s.io/${o.kubeadmApiVersion}`,
    kind: 'ClusterConfiguration',
    apiServer: {
      // v1beta4 lists extraArgs as name/value pairs; v1beta3 as a map.
      extraArgs:
        o.kubeadmApiVersion === 'v1beta4' ? args.map(([name, value]) => ({ name, value })) : Object.fromEntries(args),
      extraVolumes: [
        { name: 'etcd-autobackup-audit', hostPath: dir, mountPath: dir, readOnly: true, pathType: 'DirectoryOrCreate' },
      ],
    },
  };
}

export interface RenderedFile {
  /** File name in the output directory. */
  name: string;
  /** Where it goes on the node, when it goes there as is. */
  nodePath?: string;
  content: string;
  /** Holds key material: written 0600. */
  secret?: boolean;
}

export function renderAuditConfig(
  o: AuditConfigOptions,
  filters: Pick<Config['filters'], 'ignoreResources' | 'ignoreSubresources'>,
): RenderedFile[] {
  const paths = nodePaths(o);
  const yaml = (v: unknown) => stringify(v, { lineWidth: 0 });
  const embedsKey = o.auth.mode === 'cert' && o.auth.keyPem !== undefined;
  return [
    { name: 'policy.yaml', nodePath: paths.policy, content: yaml(auditPolicy(filters)) },
    {
      name: 'webhook-kubeconfig.yaml',
      nodePath: paths.kubeconfig,
      content: yaml(auditKubeconfig(o)),
      secret: embedsKey,
    },
    { name: 'kube-apiserver-flags.txt', content: `${apiserverFlags(o).join('\n')}\n` },
    { name: 'kubeadm-clusterconfiguration.yaml', content: yaml(kubeadmSnippet(o)) },
  ];
}
