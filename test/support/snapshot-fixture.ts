/**
 * A real etcd filled with keys, and one snapshot of it taken by takeBackup into a file store in a
 * temp dir: what restore and tool tests read. The caller stops `etcd` and removes `work`.
 */
import { join } from 'node:path';
import { loadConfig } from '../../core/config/index.js';
import { createLogger } from '../../core/logger.js';
import { takeBackup } from '../../worker/backup.js';
import type { Manifest } from '../../worker/manifest.js';
import { FileStore } from '../../worker/stores/file.js';
import { fillEtcd, startEtcd, type EtcdServer } from './etcd.js';
import { tempDir } from './tmp.js';

export interface SnapshotFixture {
  etcd: EtcdServer;
  /** The temp dir; the store is its `store/` folder. */
  work: { path: string; remove: () => Promise<void> };
  store: FileStore;
  manifest: Manifest;
}

/** `keys` keys of `valueSize` bytes, then one snapshot with the default settings. */
export async function startSnapshotFixture(name: string, keys: number, valueSize: number): Promise<SnapshotFixture> {
  const etcd = await startEtcd();
  const work = await tempDir(name);
  const store = new FileStore(join(work.path, 'store'));
  await fillEtcd(etcd.client, keys, valueSize);
  const config = loadConfig({ env: {}, flags: { endpoints: etcd.endpoint } });
  const manifest = await takeBackup({
    config,
    store,
    log: createLogger({ level: 'warn' }),
    cause: { source: 'manual' },
  });
  return { etcd, work, store, manifest };
}
