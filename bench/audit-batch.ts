/**
 * Audit EventLists and AdmissionReviews shaped like a busy cluster's, for the webhook benchmark.
 * An apiserver with a Metadata-level policy sends reads as well as writes, two stages per
 * request, and a steady drizzle of lease renewals and events; only some of a batch are triggers.
 * The mix is fixed (no randomness) so runs compare.
 */

interface Kind {
  verb: string;
  resource: string;
  group?: string;
  namespace?: string;
  /** Whether the default filters count this event as a change. */
  trigger: boolean;
  stage?: 'RequestReceived' | 'ResponseComplete';
  code?: number;
}

/** One cycle of the mix: 20 events, 4 of them triggers (20%). */
const MIX: readonly Kind[] = [
  { verb: 'get', resource: 'pods', namespace: 'shop', trigger: false },
  { verb: 'list', resource: 'configmaps', namespace: 'kube-system', trigger: false },
  { verb: 'watch', resource: 'endpointslices', group: 'discovery.k8s.io', trigger: false },
  { verb: 'update', resource: 'leases', group: 'coordination.k8s.io', namespace: 'kube-node-lease', trigger: false },
  { verb: 'update', resource: 'leases', group: 'coordination.k8s.io', namespace: 'kube-system', trigger: false },
  { verb: 'create', resource: 'events', namespace: 'shop', trigger: false },
  {
    verb: 'patch',
    resource: 'deployments',
    group: 'apps',
    namespace: 'shop',
    trigger: false,
    stage: 'RequestReceived',
  },
  { verb: 'patch', resource: 'deployments', group: 'apps', namespace: 'shop', trigger: true },
  { verb: 'get', resource: 'secrets', namespace: 'shop', trigger: false },
  { verb: 'get', resource: 'nodes', trigger: false },
  { verb: 'update', resource: 'pods', namespace: 'shop', trigger: false, stage: 'RequestReceived' },
  { verb: 'update', resource: 'pods', namespace: 'shop', trigger: true },
  { verb: 'list', resource: 'pods', namespace: 'monitoring', trigger: false },
  { verb: 'create', resource: 'configmaps', namespace: 'shop', trigger: false, code: 409 },
  { verb: 'create', resource: 'configmaps', namespace: 'ci', trigger: true },
  { verb: 'get', resource: 'leases', group: 'coordination.k8s.io', namespace: 'kube-system', trigger: false },
  { verb: 'watch', resource: 'services', trigger: false },
  { verb: 'delete', resource: 'pods', namespace: 'ci', trigger: true },
  { verb: 'create', resource: 'events', group: 'events.k8s.io', namespace: 'ci', trigger: false },
  { verb: 'get', resource: 'deployments', group: 'apps', namespace: 'shop', trigger: false },
];

export const TRIGGERS_PER_CYCLE = MIX.filter((k) => k.trigger).length;

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0').slice(-width);
}

function auditEvent(kind: Kind, seq: number, at: Date): Record<string, unknown> {
  const stage = kind.stage ?? 'ResponseComplete';
  const name = `obj-${seq % 997}`;
  const path = kind.group ? `/apis/${kind.group}/v1` : '/api/v1';
  const uri = `${path}${kind.namespace ? `/namespaces/${kind.namespace}` : ''}/${kind.resource}${kind.verb === 'list' || kind.verb === 'watch' ? '' : `/${name}`}`;
  const stamp = at.toISOString().replace('Z', '000Z');
  return {
    level: 'Metadata',
    auditID: `${hex(seq, 8)}-2b4d-4a43-9a55-${hex(seq * 7919, 12)}`,
    stage,
    requestURI: kind.verb === 'watch' ? `${uri}?allowWatchBookmarks=true&resourceVersion=918273&watch=true` : uri,
    verb: kind.verb,
    user: {
      username: `system:serviceaccount:${kind.namespace ?? 'kube-system'}:controller`,
      uid: `5a1c2b9e-8d4f-4a4e-9b7c-${hex(seq, 12)}`,
      groups: [
        'system:serviceaccounts',
        `system:serviceaccounts:${kind.namespace ?? 'kube-system'}`,
        'system:authenticated',
      ],
    },
    sourceIPs: ['10.244.1.17'],
    userAgent:
      'kube-controller-manager/v1.30.2 (linux/amd64) kubernetes/3968350/system:serviceaccount:kube-system:generic-garbage-collector',
    objectRef: {
      resource: kind.resource,
      ...(kind.namespace ? { namespace: kind.namespace } : {}),
      ...(kind.verb === 'list' || kind.verb === 'watch' ? {} : { name }),
      ...(kind.group ? { apiGroup: kind.group } : {}),
      apiVersion: 'v1',
    },
    ...(stage === 'ResponseComplete'
      ? { responseStatus: { metadata: {}, code: kind.code ?? (kind.verb === 'create' ? 201 : 200) } }
      : {}),
    requestReceivedTimestamp: stamp,
    stageTimestamp: stamp,
    ...(stage === 'ResponseComplete'
      ? {
          annotations: {
            'authorization.k8s.io/decision': 'allow',
            'authorization.k8s.io/reason':
              'RBAC: allowed by ClusterRoleBinding "system:controller:generic-garbage-collector"',
          },
        }
      : {}),
  };
}

export interface Batch {
  body: Buffer;
  events: number;
  triggers: number;
}

/** The `index`-th EventList of `size` events, serialized once so the client costs little. */
export function auditBatch(index: number, size: number, at = new Date()): Batch {
  const items: Record<string, unknown>[] = [];
  let triggers = 0;
  for (let i = 0; i < size; i++) {
    const seq = index * size + i;
    const kind = MIX[seq % MIX.length] as Kind;
    if (kind.trigger) triggers++;
    items.push(auditEvent(kind, seq, at));
  }
  const body = Buffer.from(JSON.stringify({ kind: 'EventList', apiVersion: 'audit.k8s.io/v1', metadata: {}, items }));
  return { body, events: size, triggers };
}

/** An AdmissionReview for an UPDATE of a Deployment, with its objects, as the apiserver sends it. */
export function admissionReview(seq: number): Buffer {
  const name = `web-${seq % 97}`;
  const deployment = (generation: number, replicas: number) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace: 'shop',
      generation,
      labels: { app: name },
      annotations: { 'deployment.kubernetes.io/revision': String(generation) },
    },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name: 'web',
              image: 'registry.example/web:1.4.2',
              ports: [{ containerPort: 8080 }],
              resources: { requests: { cpu: '100m', memory: '128Mi' } },
            },
          ],
        },
      },
    },
  });
  return Buffer.from(
    JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: `705ab4f5-6393-11e8-b7cc-${hex(seq, 12)}`,
        kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
        resource: { group: 'apps', version: 'v1', resource: 'deployments' },
        requestKind: { group: 'apps', version: 'v1', kind: 'Deployment' },
        requestResource: { group: 'apps', version: 'v1', resource: 'deployments' },
        name,
        namespace: 'shop',
        operation: 'UPDATE',
        userInfo: { username: 'kubernetes-admin', groups: ['kubeadm:cluster-admins', 'system:authenticated'] },
        object: deployment(8, 3),
        oldObject: deployment(7, 2),
        options: { apiVersion: 'meta.k8s.io/v1', kind: 'UpdateOptions', fieldManager: 'kubectl-edit' },
        dryRun: false,
      },
    }),
  );
}
