/**
 * The bound on what a trigger may say about itself. Sample resources travel to Redis (the ledger
 * and the job data), the dashboard and every manifest, and their text comes from the apiserver's
 * bodies or etcd keys: a 3 MiB `request.name` must not become a 3 MiB manifest.
 */

/**
 * Longest sample kept, in characters: room for `group/resource namespace/name` with Kubernetes'
 * own limits (253 for group and name, 63 for resource and namespace) or an etcd key of such a name.
 */
export const MAX_SAMPLE_LENGTH = 640;

/** `resource` cut to MAX_SAMPLE_LENGTH (marked with …) and without control characters. */
export function boundSample(resource: string): string {
  const clean = resource.length > MAX_SAMPLE_LENGTH * 2 ? resource.slice(0, MAX_SAMPLE_LENGTH * 2) : resource;
  // eslint-disable-next-line no-control-regex
  const printable = clean.replace(/[\u0000-\u001f\u007f]/g, '?');
  return printable.length > MAX_SAMPLE_LENGTH ? `${printable.slice(0, MAX_SAMPLE_LENGTH - 1)}…` : printable;
}
