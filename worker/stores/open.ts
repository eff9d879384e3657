/**
 * Picks the provider from the store URL's scheme, the way restic and rclone users expect.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../core/errors.js';
import type { Config } from '../../core/config/index.js';
import { FileStore } from './file.js';
import type { Store } from './store.js';

export function openStore(config: Pick<Config, 'store'>): Store {
  const url = config.store.url;
  if (!url.includes('://')) return new FileStore(resolve(url));
  const scheme = url.slice(0, url.indexOf('://'));
  switch (scheme) {
    case 'file':
      return new FileStore(filePath(url));
    default:
      throw new ConfigError(`store.url: unsupported scheme "${scheme}://" (expected file://, s3://, ncp:// or oci://)`);
  }
}

/** `file:///abs/dir` is absolute; `file://./rel` and `file://rel` are relative to the working directory. */
function filePath(url: string): string {
  if (url.startsWith('file:///')) return fileURLToPath(url);
  return resolve(url.slice('file://'.length));
}
