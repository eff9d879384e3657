/**
 * Which change signals are worth a snapshot. Pure functions of one event (or admission request)
 * and the `filters` config: no I/O, so the audit and admission routes, tests and metrics share
 * one answer. An ignored signal carries a short stable reason that becomes a metric label.
 */
import type { Config } from '../core/config/index.js';
import type { AdmissionRequest, AuditEvent } from './wire.js';

export type Filters = Config['filters'];

export const IGNORE_REASONS = [
  'malformed',
  'stage',
  'verb',
  'status',
  'dry-run',
  'subresource',
  'resource',
  'user',
] as const;
export type IgnoreReason = (typeof IGNORE_REASONS)[number];

/** `resource` is the label recorded with the change, e.g. `apps/deployments shop/web`. */
export type FilterDecision = { trigger: true; resource: string } | { trigger: false; reason: IgnoreReason };

/** What a write touched, in terms shared by audit events and admission requests. */
export interface WriteTarget {
  /** API group; `""` for the core group. */
  group: string;
  resource: string;
  subresource?: string | undefined;
  namespace?: string | undefined;
  name?: string | undefined;
}

const ignore = (reason: IgnoreReason): FilterDecision => ({ trigger: false, reason });

export function filterAuditEvent(event: AuditEvent, filters: Filters): FilterDecision {
  // Earlier stages come before the write happened; ResponseComplete is the one that says it did.
  if (event.stage !== 'ResponseComplete') return ignore('stage');
  if (!filters.verbs.includes(event.verb)) return ignore('verb');
  const code = event.responseStatus?.code;
  if (code === undefined || code < 200 || code > 299) return ignore('status');
  if (isDryRun(event.requestURI)) return ignore('dry-run');
  const ref = event.objectRef;
  if (ref?.resource === undefined || ref.resource === '') return ignore('resource');
  const target: WriteTarget = {
    group: ref.apiGroup ?? '',
    resource: ref.resource,
    subresource: ref.subresource,
    namespace: ref.namespace,
    name: ref.name,
  };
  return filterWrite(target, (event.impersonatedUser ?? event.user)?.username, filters);
}

/** The audit verbs each admission operation stands for (CONNECT stands for none: it writes nothing). */
const OPERATION_VERBS = new Map<string, readonly string[]>([
  ['CREATE', ['create']],
  ['UPDATE', ['update', 'patch']],
  ['DELETE', ['delete', 'deletecollection']],
]);

export function filterAdmissionRequest(request: AdmissionRequest, filters: Filters): FilterDecision {
  const verbs = OPERATION_VERBS.get(request.operation);
  if (verbs === undefined || !verbs.some((v) => filters.verbs.includes(v))) return ignore('verb');
  if (request.dryRun === true) return ignore('dry-run');
  const target: WriteTarget = {
    group: request.resource.group,
    resource: request.resource.resource,
    subresource: request.subResource,
    namespace: request.namespace,
    name: request.name,
  };
  return filterWrite(target, request.userInfo?.username, filters);
}

/** The checks that apply to any write, whichever source reported it. */
export function filterWrite(target: WriteTarget, username: string | undefined, filters: Filters): FilterDecision {
  if (target.subresource && filters.ignoreSubresources.includes(target.subresource)) return ignore('subresource');
  if (filters.ignoreResources.includes(groupResource(target))) return ignore('resource');
  if (username !== undefined && filters.ignoreUsers.includes(username)) return ignore('user');
  return { trigger: true, resource: resourceLabel(target) };
}

/** `group/resource`, or just `resource` for the core group: the form `filters.ignoreResources` uses. */
export function groupResource(target: Pick<WriteTarget, 'group' | 'resource'>): string {
  return target.group ? `${target.group}/${target.resource}` : target.resource;
}

/**
 * A short label of what changed: `apps/deployments shop/web`, `namespaces shop`,
 * `pods/status default/nginx`; `ns/*` when the name is unknown (generateName, deletecollection).
 */
export function resourceLabel(target: WriteTarget): string {
  const what = target.subresource ? `${groupResource(target)}/${target.subresource}` : groupResource(target);
  const where = target.namespace ? `${target.namespace}/${target.name || '*'}` : target.name;
  return where ? `${what} ${where}` : what;
}

/** Dry runs reach the audit log like real writes; only the `dryRun` query parameter tells them apart. */
export function isDryRun(requestURI: string): boolean {
  const q = requestURI.indexOf('?');
  if (q < 0) return false;
  return new URLSearchParams(requestURI.slice(q + 1)).getAll('dryRun').some((v) => v !== '');
}
