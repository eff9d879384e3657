/**
 * Where kube-apiserver keeps an object in etcd, so that an operator can name what they lost as
 * Kubernetes names it (`namespaces/prod`, `apps/deployments/shop/web`) rather than as an etcd key.
 *
 * The layout is kube-apiserver's default (`--etcd-prefix=/registry`):
 * `/registry/<resource prefix>/[<namespace>/]<name>`, where the resource prefix is
 * - a handful of historical names compiled into Kubernetes (services are `services/specs`, nodes
 *   `minions`, ...),
 * - `<group>/<resource>` for apiextensions.k8s.io and apiregistration.k8s.io, and for custom
 *   resources (any group with a dot that is not a `*.k8s.io` group),
 * - the bare resource for everything else: the core group and the built-in groups (`apps`,
 *   `batch`, `rbac.authorization.k8s.io`, ...) have no group segment.
 * A key that starts with `/` is taken as it is (another --etcd-prefix, or a key seen in `history`).
 */

export const REGISTRY_PREFIX = '/registry';

/** Historical prefixes compiled into kube-apiserver, by `group/resource` ('' is the core group). */
const SPECIAL_PREFIXES: Readonly<Record<string, string>> = {
  '/replicationcontrollers': 'controllers',
  '/endpoints': 'services/endpoints',
  '/nodes': 'minions',
  '/services': 'services/specs',
  'extensions/ingresses': 'ingress',
  'networking.k8s.io/ingresses': 'ingress',
  'extensions/podsecuritypolicies': 'podsecuritypolicy',
  'policy/podsecuritypolicies': 'podsecuritypolicy',
};

/** Groups stored as `<group>/<resource>` although they are part of Kubernetes. */
const GROUP_PREFIXED = new Set(['apiextensions.k8s.io', 'apiregistration.k8s.io']);

/** Built-in groups without a dot: their first path segment is a group, not a resource. */
const DOTLESS_GROUPS = new Set(['apps', 'batch', 'autoscaling', 'policy', 'extensions']);

export interface ResourceRef {
  group: string;
  resource: string;
  namespace?: string;
  name: string;
}

/** The etcd key prefix (without the trailing `/`) of a group's resource. */
export function resourcePrefix(group: string, resource: string): string {
  const special = SPECIAL_PREFIXES[`${group}/${resource}`];
  if (special) return `${REGISTRY_PREFIX}/${special}`;
  const withGroup = GROUP_PREFIXED.has(group) || (group.includes('.') && !group.endsWith('.k8s.io'));
  return `${REGISTRY_PREFIX}/${withGroup ? `${group}/` : ''}${resource}`;
}

/**
 * `[<group>/]<resource>/[<namespace>/]<name>` → its parts. The first segment is a group when it
 * has a dot or is one of the dot-less built-in groups; without a group it is the core group.
 */
export function parseResourceRef(text: string): ResourceRef {
  const parts = text.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) throw new Error(resourceHelp(text));
  const [first = '', ...rest] = parts;
  const hasGroup = first.includes('.') || DOTLESS_GROUPS.has(first);
  const group = hasGroup ? first : '';
  const resource = hasGroup ? rest.shift() : first;
  if (!resource || rest.length < 1 || rest.length > 2) throw new Error(resourceHelp(text));
  const [a = '', b] = rest;
  return b === undefined ? { group, resource, name: a } : { group, resource, namespace: a, name: b };
}

/** The etcd key of an object named as `parseResourceRef` reads it, or a key given as it is. */
export function resourceKey(text: string): string {
  if (text.startsWith('/')) return text;
  const ref = parseResourceRef(text);
  return `${resourcePrefix(ref.group, ref.resource)}/${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
}

function resourceHelp(text: string): string {
  return (
    `"${text}" does not name one object: write [<group>/]<resource>/[<namespace>/]<name> ` +
    '(e.g. namespaces/prod, configmaps/default/app, apps/deployments/shop/web, ' +
    'cert-manager.io/certificates/shop/tls) or give the etcd key itself (starting with /)'
  );
}
