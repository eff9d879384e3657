/**
 * Bucket URLs: `s3://bucket/prefix`, `ncp://bucket/prefix?region=kr` and the same shape under
 * other schemes, checked and split with errors that say what to write instead.
 */
import { ConfigError } from '../../core/errors.js';
import { assertSafeKey } from './store.js';

/** `s3://bucket/prefix` (and the same shape under other schemes) split into its parts. */
export interface BucketUrl {
  bucket: string;
  prefix: string;
  query: URLSearchParams;
}

export function parseBucketUrl(url: string, allowedParams: readonly string[] = []): BucketUrl {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`store.url: "${redactUrl(url)}" is not a valid URL (expected ${parsedExample(url)})`);
  }
  const example = parsedExample(url);
  if (parsed.username || parsed.password) {
    throw new ConfigError(
      `store.url: credentials do not belong in the store URL; set store.s3.accessKeyId and store.s3.secretAccessKey (or use the AWS credential chain) and write ${example}`,
    );
  }
  if (!parsed.hostname) throw new ConfigError(`store.url: no bucket in "${redactUrl(url)}" (expected ${example})`);
  if (parsed.port)
    throw new ConfigError(
      `store.url: a bucket has no port; set the service address in store.s3.endpoint (expected ${example})`,
    );
  for (const name of parsed.searchParams.keys()) {
    if (!allowedParams.includes(name)) {
      throw new ConfigError(
        `store.url: unknown parameter "${name}" in "${redactUrl(url)}"${allowedParams.length > 0 ? ` (allowed: ${allowedParams.join(', ')})` : ''}; S3 options go under store.s3`,
      );
    }
  }
  const prefix = decodeURIComponent(parsed.pathname).replace(/^\/+|\/+$/g, '');
  if (prefix) {
    try {
      assertSafeKey(prefix);
    } catch {
      throw new ConfigError(`store.url: prefix "${prefix}" has empty, "." or ".." segments`);
    }
  }
  return { bucket: parsed.hostname, prefix, query: parsed.searchParams };
}

function parsedExample(url: string): string {
  const scheme = url.slice(0, Math.max(0, url.indexOf('://'))) || 's3';
  return scheme === 'ncp' ? 'ncp://bucket/prefix?region=kr' : `${scheme}://bucket/prefix`;
}

/** The URL with anything between `://` and `@` hidden, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/:\/\/[^/@]*@/, '://***@');
}
