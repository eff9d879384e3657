import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startEtcd, fillEtcd } from './support/etcd.js';
import { tempDir } from './support/tmp.js';
import { loadConfig } from '../core/config/index.js';
import { createLogger } from '../core/logger.js';
import { takeBackup } from '../worker/backup.js';
import { openStore } from '../worker/stores/open.js';

test('smoke: snapshot to a file store', async () => {
  const etcd = await startEtcd();
  const dir = await tempDir('store');
  try {
    const rev = await fillEtcd(etcd.client, 2000);
    const config = loadConfig({ env: {}, flags: { endpoints: etcd.endpoint, store: `file://${dir.path}` } });
    const store = await openStore(config);
    const manifest = await takeBackup({
      config,
      store,
      log: createLogger({ level: 'warn' }),
      cause: { source: 'manual' },
    });
    assert.ok(manifest.etcd.revision >= rev);
    const listed = await store.list('');
    assert.deepEqual(
      listed.map((o) => o.key).sort(),
      [manifest.key, manifest.key.replace(/\.db(\.gz|\.zst)?$/, '.manifest.json')].sort(),
    );
  } finally {
    await etcd.stop();
    await dir.remove();
  }
});
