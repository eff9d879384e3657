/**
 * Checks of a rendered chart that a cluster would otherwise find one failed rollout at a time: each
 * object against the Kubernetes schemas, and the references between objects. Each returns the
 * problems it found as readable lines, so that a test shows all of them at once.
 */
import { createRequire } from 'node:module';
import type { K8sObject } from './helm.js';

const require = createRequire(import.meta.url);

interface Model {
  validate(): void;
}
type ModelClass = new (data: unknown) => Model;

/** Kinds that kubernetes-models has no schema for (CRDs), checked by the wiring checks only. */
const CRD_KINDS = new Set(['monitoring.coreos.com/v1/ServiceMonitor']);

/** Each object against the Kubernetes OpenAPI schemas, through kubernetes-models' validators. */
export function schemaProblems(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const o of objects) {
    const id = `${o.kind}/${o.metadata.name}`;
    if (CRD_KINDS.has(`${o.apiVersion}/${o.kind}`)) continue;
    let Class: ModelClass | undefined;
    try {
      Class = (require(`kubernetes-models/${o.apiVersion}/${o.kind}`) as Record<string, ModelClass>)[o.kind];
    } catch {
      Class = undefined;
    }
    if (!Class) {
      problems.push(`${id}: no Kubernetes schema for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    try {
      new Class(o).validate();
    } catch (err) {
      problems.push(`${id}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return problems;
}

export interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: {
    name: string;
    value?: string;
    valueFrom?: {
      secretKeyRef?: { name: string; key: string };
      configMapKeyRef?: { name: string; key: string };
      fieldRef?: { fieldPath: string };
    };
  }[];
  envFrom?: { secretRef?: { name: string }; configMapRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  securityContext?: {
    runAsUser?: number;
    runAsNonRoot?: boolean;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
  };
}
export interface Probe {
  httpGet?: { path: string; port: string | number; scheme?: string };
}
export interface Volume {
  name: string;
  secret?: { secretName: string; items?: { key: string }[] };
  configMap?: { name: string };
  hostPath?: { path: string };
  persistentVolumeClaim?: { claimName: string };
  emptyDir?: unknown;
}
export interface PodSpec {
  serviceAccountName?: string;
  hostNetwork?: boolean;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
}
export interface Workload {
  object: K8sObject;
  labels: Record<string, string>;
  pod: PodSpec;
}

export function byKind(objects: readonly K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

export function find(objects: readonly K8sObject[], kind: string, name: string): K8sObject | undefined {
  return objects.find((o) => o.kind === kind && o.metadata.name === name);
}

export function workloads(objects: readonly K8sObject[]): Workload[] {
  return objects
    .filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')
    .map((o) => {
      const template = (o.spec as { template: { metadata: { labels: Record<string, string> }; spec: PodSpec } })
        .template;
      return { object: o, labels: template.metadata.labels, pod: template.spec };
    });
}

/** Data keys of a Secret, or undefined when it is not rendered. */
function secretKeys(objects: readonly K8sObject[], name: string): string[] | undefined {
  const s = find(objects, 'Secret', name);
  if (!s) return undefined;
  return [
    ...Object.keys((s.data as Record<string, string> | undefined) ?? {}),
    ...Object.keys((s.stringData as Record<string, string> | undefined) ?? {}),
  ];
}

const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/**
 * The references between the rendered objects. `external` names the Secrets the operator brings
 * (values like secrets.existingSecret): those may be absent from the output.
 */
export function wiringProblems(
  objects: readonly K8sObject[],
  external: { secrets: readonly string[]; claims: readonly string[] },
): string[] {
  const problems: string[] = [];
  const pods = workloads(objects);

  for (const w of pods) {
    const id = `${w.object.kind}/${w.object.metadata.name}`;
    const selector = (w.object.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
    if (!matches(selector, w.labels)) problems.push(`${id}: selector does not match its own pod labels`);
    if (w.pod.serviceAccountName && !find(objects, 'ServiceAccount', w.pod.serviceAccountName)) {
      problems.push(`${id}: ServiceAccount ${w.pod.serviceAccountName} is not rendered`);
    }
    const volumes = new Map((w.pod.volumes ?? []).map((v) => [v.name, v]));
    const claimTemplates = (
      (w.object.spec as { volumeClaimTemplates?: { metadata: { name: string } }[] }).volumeClaimTemplates ?? []
    ).map((c) => c.metadata.name);
    for (const v of volumes.values()) {
      if (v.secret && !external.secrets.includes(v.secret.secretName)) {
        const keys = secretKeys(objects, v.secret.secretName);
        if (!keys) problems.push(`${id}: volume ${v.name} needs Secret ${v.secret.secretName}, which is not rendered`);
        for (const item of v.secret.items ?? [])
          if (keys && !keys.includes(item.key))
            problems.push(`${id}: Secret ${v.secret.secretName} has no key ${item.key}`);
      }
      if (v.configMap && !find(objects, 'ConfigMap', v.configMap.name))
        problems.push(`${id}: ConfigMap ${v.configMap.name} is not rendered`);
      if (v.persistentVolumeClaim && !external.claims.includes(v.persistentVolumeClaim.claimName))
        problems.push(`${id}: PVC ${v.persistentVolumeClaim.claimName} is neither rendered nor given`);
    }
    for (const c of [...w.pod.containers, ...(w.pod.initContainers ?? [])]) {
      const cid = `${id} container ${c.name}`;
      for (const m of c.volumeMounts ?? []) {
        if (!volumes.has(m.name) && !claimTemplates.includes(m.name))
          problems.push(`${cid}: mounts volume ${m.name}, which the pod does not have`);
        const cm = volumes.get(m.name)?.configMap;
        if (cm && m.subPath) {
          const data = (find(objects, 'ConfigMap', cm.name)?.data as Record<string, string> | undefined) ?? {};
          if (!(m.subPath in data)) problems.push(`${cid}: ConfigMap ${cm.name} has no key ${m.subPath}`);
        }
      }
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (ref && !external.secrets.includes(ref.name)) {
          const keys = secretKeys(objects, ref.name);
          if (!keys?.includes(ref.key))
            problems.push(`${cid}: env ${e.name} needs key ${ref.key} of Secret ${ref.name}, which is not rendered`);
        }
      }
      for (const e of c.envFrom ?? []) {
        const name = e.secretRef?.name;
        if (name && !external.secrets.includes(name) && !secretKeys(objects, name))
          problems.push(`${cid}: envFrom Secret ${name} is not rendered`);
      }
      const portNames = (c.ports ?? []).map((p) => p.name);
      for (const probe of [c.livenessProbe, c.readinessProbe]) {
        const port = probe?.httpGet?.port;
        if (typeof port === 'string' && !portNames.includes(port))
          problems.push(`${cid}: probe port ${port} is not a container port`);
      }
    }
  }

  for (const svc of byKind(objects, 'Service')) {
    const spec = svc.spec as {
      selector: Record<string, string>;
      ports: { name: string; targetPort: string | number }[];
    };
    const selected = pods.filter((w) => matches(spec.selector, w.labels));
    if (selected.length === 0) problems.push(`Service/${svc.metadata.name}: selects no pods`);
    for (const port of spec.ports) {
      for (const w of selected) {
        const ports = w.pod.containers.flatMap((c) => c.ports ?? []);
        const ok =
          typeof port.targetPort === 'string'
            ? ports.some((p) => p.name === port.targetPort)
            : ports.some((p) => p.containerPort === port.targetPort);
        if (!ok)
          problems.push(
            `Service/${svc.metadata.name}: targetPort ${port.targetPort} is not a port of ${w.object.metadata.name}`,
          );
      }
    }
  }

  for (const pdb of byKind(objects, 'PodDisruptionBudget')) {
    const sel = (pdb.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
    if (!pods.some((w) => matches(sel, w.labels)))
      problems.push(`PodDisruptionBudget/${pdb.metadata.name}: selects no pods`);
  }

  for (const vwc of byKind(objects, 'ValidatingWebhookConfiguration')) {
    for (const hook of vwc.webhooks as {
      name: string;
      clientConfig: { service: { name: string; namespace: string; port: number } };
    }[]) {
      const ref = hook.clientConfig.service;
      const svc = find(objects, 'Service', ref.name);
      const ports = (svc?.spec as { ports: { port: number }[] } | undefined)?.ports ?? [];
      if (!svc) problems.push(`webhook ${hook.name}: Service ${ref.name} is not rendered`);
      else if (!ports.some((p) => p.port === ref.port))
        problems.push(`webhook ${hook.name}: Service ${ref.name} has no port ${ref.port}`);
    }
  }

  for (const binding of [...byKind(objects, 'RoleBinding'), ...byKind(objects, 'ClusterRoleBinding')]) {
    const roleRef = binding.roleRef as { kind: string; name: string };
    if (!find(objects, roleRef.kind, roleRef.name))
      problems.push(`${binding.kind}/${binding.metadata.name}: ${roleRef.kind} ${roleRef.name} is not rendered`);
    for (const s of binding.subjects as { kind: string; name: string }[]) {
      if (s.kind === 'ServiceAccount' && !find(objects, 'ServiceAccount', s.name))
        problems.push(`${binding.kind}/${binding.metadata.name}: ServiceAccount ${s.name} is not rendered`);
    }
  }

  for (const sm of byKind(objects, 'ServiceMonitor')) {
    const spec = sm.spec as { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] };
    const services = byKind(objects, 'Service').filter((s) =>
      matches(spec.selector.matchLabels, s.metadata.labels ?? {}),
    );
    for (const ep of spec.endpoints) {
      if (!services.some((s) => (s.spec as { ports: { name: string }[] }).ports.some((p) => p.name === ep.port)))
        problems.push(`ServiceMonitor/${sm.metadata.name}: no selected Service has a port ${ep.port}`);
    }
  }
  return problems;
}

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** RBAC wider than the service uses: wildcards, and anything cluster-wide but its own webhook configuration. */
export function rbacProblems(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  for (const role of [...byKind(objects, 'Role'), ...byKind(objects, 'ClusterRole')]) {
    for (const rule of (role.rules as Rule[] | undefined) ?? []) {
      const id = `${role.kind}/${role.metadata.name}`;
      if ([...(rule.verbs ?? []), ...(rule.resources ?? []), ...(rule.apiGroups ?? [])].includes('*'))
        problems.push(`${id}: wildcard in ${JSON.stringify(rule)}`);
      if (
        (rule.resources ?? []).includes('secrets') &&
        rule.verbs.some((v) => v !== 'create') &&
        !rule.resourceNames?.length
      ) {
        problems.push(`${id}: reads or writes every Secret of the namespace`);
      }
      if (role.kind === 'ClusterRole') {
        const own =
          rule.resources?.every((r) => r === 'validatingwebhookconfigurations') &&
          (rule.resourceNames?.length ?? 0) > 0;
        if (!own)
          problems.push(`${id}: cluster-wide rule beyond its own webhook configuration: ${JSON.stringify(rule)}`);
      }
    }
  }
  return problems;
}
