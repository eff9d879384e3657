/**
 * Whether rendered NetworkPolicies let one connection through, by the rules of the Kubernetes
 * NetworkPolicy API (ingress only, as the chart renders): a pod no Ingress policy selects accepts
 * everything; otherwise one rule of one selecting policy must match both the port and the source.
 * Host-network pods are outside every policy. Numeric ports only (the chart uses no named ports).
 */
import { BlockList, isIPv4 } from 'node:net';
import type { K8sObject } from './helm.js';

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

interface Peer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

interface PolicySpec {
  podSelector: LabelSelector;
  policyTypes?: string[];
  ingress?: { ports?: { port?: number; protocol?: string }[]; from?: Peer[] }[];
}

/** Where a connection comes from: a pod (its namespace, labels and IP) or a bare address (a node, outside). */
export type Source =
  | { pod: { namespace: string; namespaceLabels?: Record<string, string>; labels: Record<string, string>; ip: string } }
  | { ip: string };

export interface Destination {
  namespace: string;
  labels: Record<string, string>;
  hostNetwork?: boolean;
}

export function selects(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const ok =
      e.operator === 'In'
        ? has && (e.values ?? []).includes(value ?? '')
        : e.operator === 'NotIn'
          ? !has || !(e.values ?? []).includes(value ?? '')
          : e.operator === 'Exists'
            ? has
            : !has;
    if (!ok) return false;
  }
  return true;
}

function inCidr(ip: string, cidr: string): boolean {
  const [net = '', bits = ''] = cidr.split('/');
  const type = isIPv4(net) ? 'ipv4' : 'ipv6';
  if ((type === 'ipv4') !== isIPv4(ip)) return false;
  const list = new BlockList();
  list.addSubnet(net, Number(bits), type);
  return list.check(ip, type);
}

function peerMatches(peer: Peer, source: Source, policyNamespace: string): boolean {
  const ip = 'pod' in source ? source.pod.ip : source.ip;
  if (peer.ipBlock) return inCidr(ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((c) => inCidr(ip, c));
  // Pod and namespace selectors match pods only, never a node's or an outside address.
  if (!('pod' in source)) return false;
  const { pod } = source;
  const nsLabels = { 'kubernetes.io/metadata.name': pod.namespace, ...pod.namespaceLabels };
  const nsOk = peer.namespaceSelector ? selects(peer.namespaceSelector, nsLabels) : pod.namespace === policyNamespace;
  const podOk = peer.podSelector ? selects(peer.podSelector, pod.labels) : true;
  return nsOk && podOk;
}

/** The rendered NetworkPolicies (namespace: the release's) that select the destination for ingress. */
export function ingressPolicies(objects: readonly K8sObject[], dest: Destination): K8sObject[] {
  return objects.filter((o) => {
    if (o.kind !== 'NetworkPolicy') return false;
    const spec = o.spec as PolicySpec;
    const ingress = spec.policyTypes ? spec.policyTypes.includes('Ingress') : true;
    return (
      ingress && (o.metadata.namespace ?? dest.namespace) === dest.namespace && selects(spec.podSelector, dest.labels)
    );
  });
}

export function allowed(objects: readonly K8sObject[], source: Source, dest: Destination, port: number): boolean {
  if (dest.hostNetwork) return true;
  const policies = ingressPolicies(objects, dest);
  if (policies.length === 0) return true;
  return policies.some((p) =>
    ((p.spec as PolicySpec).ingress ?? []).some((rule) => {
      const portOk =
        !rule.ports || rule.ports.length === 0 || rule.ports.some((x) => x.port === undefined || x.port === port);
      const fromOk =
        !rule.from || rule.from.length === 0 || rule.from.some((peer) => peerMatches(peer, source, dest.namespace));
      return portOk && fromOk;
    }),
  );
}
