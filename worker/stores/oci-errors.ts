/**
 * OCI SDK and network errors, phrased with what the operator should check. The SDK throws its
 * OciError for service answers and a plain `{ code, message }` object (not an Error) for network
 * failures; neither carries the private key or passphrase.
 */

export interface OciFailure {
  /** HTTP status, or undefined when no answer came (network, DNS, TLS). */
  status: number | undefined;
  /** OCI's error code (`NotAuthenticated`, `BucketNotFound`...) or the network error code. */
  code: string | undefined;
  message: string;
}

export function ociFailure(err: unknown): OciFailure {
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    statusCode?: unknown;
    serviceCode?: unknown;
    code?: unknown;
    message?: unknown;
  };
  const status = typeof e.statusCode === 'number' && e.statusCode > 0 ? e.statusCode : undefined;
  const code = typeof e.serviceCode === 'string' ? e.serviceCode : typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message : String(err);
  return { status, code, message };
}

/** Answers that another attempt may change: the SDK's own rule, applied to our streamed bodies. */
export function isRetryable(err: unknown): boolean {
  const { status, code } = ociFailure(err);
  if (status === undefined) return true;
  return status >= 500 || status === 429 || (status === 409 && code === 'IncorrectState');
}

export function isNotFound(err: unknown, ...codes: string[]): boolean {
  const { status, code } = ociFailure(err);
  return status === 404 && (codes.length === 0 || (code !== undefined && codes.includes(code)));
}

/** One line: what OCI said and what to check, e.g. for `where` = `oci://ns/bucket (endpoint ...)`. */
export function describeOciError(err: unknown, where: { namespace: string; bucket: string; endpoint: string }): string {
  const { status, code, message } = ociFailure(err);
  const said = `${status ?? 'no answer'}${code ? ` ${code}` : ''}: ${firstSentence(message)}`;
  if (status === undefined) {
    return `${said} (cannot reach ${where.endpoint}: check the region or store.oci.endpoint, DNS, proxies and the network path)`;
  }
  if (status === 401) {
    return (
      `${said} (OCI did not accept the request signature: check the tenancy and user OCIDs, that the fingerprint is that of an API key ` +
      'uploaded for this user and the private key is its pair, and that the clock of this machine is right)'
    );
  }
  if (
    status === 404 &&
    (code === 'BucketNotFound' || code === 'NamespaceNotFound' || code === 'NotAuthorizedOrNotFound')
  ) {
    return (
      `${said} (check the namespace "${where.namespace}" (\`oci os ns get\`), the bucket "${where.bucket}" and the region, ` +
      "and that an IAM policy lets the user's group `manage objects` in the bucket's compartment)"
    );
  }
  if (status === 403 || code === 'NotAuthorized') {
    return `${said} (an IAM policy must let the user's group \`manage objects\` in the bucket "${where.bucket}"'s compartment)`;
  }
  if (status === 409 && code === 'NotRestored') {
    return `${said} (the object is in the Archive tier: restore it first, e.g. \`oci os object restore\`, and retry after it is available)`;
  }
  return said;
}

function firstSentence(message: string): string {
  // The SDK appends troubleshooting boilerplate and links after the service's own words.
  const line = message.split('\n')[0] ?? message;
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}
