/** S3 SDK and network errors, phrased with what the operator should check. */

export function errorName(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'name' in err && typeof err.name === 'string'
    ? err.name
    : undefined;
}

const TLS_TRUST = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);
const CREDENTIALS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'Forbidden',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'CredentialsProviderError',
]);
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/**
 * An SDK or network error in one line with what to check. SDK messages carry the service's
 * words, never the secret key, so they are safe to show.
 */
export function describeS3Error(err: unknown): string {
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    name?: unknown;
    code?: unknown;
    message?: unknown;
    $metadata?: { httpStatusCode?: number };
  };
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const code = typeof e.code === 'string' ? e.code : undefined;
  const status = e.$metadata?.httpStatusCode;
  const message = (typeof e.message === 'string' && e.message) || (status ? `HTTP ${status}` : String(err));
  const said = `${code ?? name}: ${message}`;
  if (name === 'NoSuchBucket')
    return `${said}; the bucket does not exist: create it or fix the bucket name in store.url`;
  if (CREDENTIALS.has(name) || status === 403) {
    return `${said}; check the credentials (store.s3.accessKeyId/secretAccessKey, or the AWS credential chain: env, profile, IRSA, instance role) and that they may use this bucket`;
  }
  if (
    name === 'PermanentRedirect' ||
    name === 'AuthorizationHeaderMalformed' ||
    name === 'IllegalLocationConstraintException'
  ) {
    return `${said}; the bucket is in another region: set store.s3.region`;
  }
  if (/region is missing/i.test(message)) return `${said}; set store.s3.region (or AWS_REGION)`;
  if (code && TLS_TRUST.has(code)) {
    return `TLS: the endpoint's certificate is not trusted (${code}: ${message}); set store.s3.caFile to the PEM of the CA that signed it`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return `TLS: ${message}; the certificate does not name this host: check store.s3.endpoint`;
  if (code === 'CERT_HAS_EXPIRED') return `TLS: ${message}; the endpoint's certificate has expired`;
  if ((code && UNREACHABLE.has(code)) || name === 'TimeoutError' || /socket hang up/i.test(message)) {
    return `${said}; cannot reach the storage service: check store.s3.endpoint, DNS and network policies, and that the service is up`;
  }
  if (status !== undefined && status >= 500)
    return `${said} (HTTP ${status}); the storage service failed, which is often temporary`;
  return said;
}
