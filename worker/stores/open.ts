/**
 * Picks the provider from the store URL's scheme, the way restic and rclone users expect.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../core/errors.js';
import type { Config } from '../../core/config/index.js';
import { FileStore } from './file.js';
import type { Store } from './store.js';

/**
 * The store named by `store.url`. Providers load on first use: the AWS SDK alone adds 10-15 MiB
 * to a process that only ever writes to a local directory.
 */
export async function openStore(config: Pick<Config, 'store'>): Promise<Store> {
  const url = config.store.url;
  if (!url.includes('://')) return new FileStore(resolve(url));
  const scheme = url.slice(0, url.indexOf('://'));
  switch (scheme) {
    case 'file':
      return new FileStore(filePath(url));
    case 's3':
      return (await import('./s3.js')).openS3Store(url, config.store.s3);
    case 'ncp':
      return (await import('./ncp.js')).openNcpStore(url, config.store.s3);
    case 'oci':
      return (await import('./oci.js')).openOciStore(url, config.store.oci);
    default:
      throw new ConfigError(`store.url: unsupported scheme "${scheme}://" (expected file://, s3://, ncp:// or oci://)`);
  }
}

/** `file:///abs/dir` is absolute; `file://./rel` and `file://rel` are relative to the working directory. */
function filePath(url: string): string {
  if (url.startsWith('file:///')) return fileURLToPath(url);
  return resolve(url.slice('file://'.length));
}
