/**
 * What the webhook's certificate sync and the worker's Job executor share about talking to the
 * Kubernetes API: where the client config comes from, which namespace we are in, and reading the
 * apiserver's Status errors (the `reason` decides between retry, adopt and fail).
 */
import { readFileSync } from 'node:fs';
import { ApiException, KubeConfig } from '@kubernetes/client-node';

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** In a pod: its service account; elsewhere: $KUBECONFIG or ~/.kube/config. */
export function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const cluster = kc.getCurrentCluster();
  // With nothing to load, the client falls back to an unauthenticated localhost:8080.
  if (!cluster || (cluster.name === 'cluster' && cluster.server === 'http://localhost:8080')) {
    throw new Error('no Kubernetes API to talk to: not running in a pod and no KUBECONFIG or ~/.kube/config found');
  }
  return kc;
}

/** The configured namespace, else the pod's own, else the kubeconfig context's, else `default`. */
export function resolveNamespace(
  kc: KubeConfig,
  configured: string | undefined,
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): string {
  if (configured) return configured;
  try {
    const ns = readFile(SERVICE_ACCOUNT_NAMESPACE).trim();
    if (ns) return ns;
  } catch {
    // Not in a pod.
  }
  return kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
}

export interface ApiFailure {
  code: number;
  /** The Status `reason`: NotFound, AlreadyExists, Conflict, Forbidden, Invalid, ... */
  reason: string | undefined;
  message: string | undefined;
}

/** The HTTP code and Status reason of a failed API call; undefined for errors that are not API answers. */
export function apiFailure(err: unknown): ApiFailure | undefined {
  if (!(err instanceof ApiException)) return undefined;
  let body: unknown = (err as ApiException<unknown>).body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      body = undefined;
    }
  }
  const status = typeof body === 'object' && body !== null ? (body as { reason?: unknown; message?: unknown }) : {};
  return {
    code: err.code,
    reason: typeof status.reason === 'string' ? status.reason : undefined,
    message: typeof status.message === 'string' ? status.message : undefined,
  };
}

/** A short description of a failed API call for errors and logs (never the request body). */
export function describeApiError(err: unknown): string {
  const f = apiFailure(err);
  if (!f) return err instanceof Error ? err.message : String(err);
  const hint =
    f.code === 401
      ? ' (the service account token was refused)'
      : f.code === 403
        ? ' (RBAC: the service account lacks this permission)'
        : '';
  return `HTTP ${f.code}${f.reason ? ` ${f.reason}` : ''}${f.message ? `: ${f.message}` : ''}${hint}`;
}
