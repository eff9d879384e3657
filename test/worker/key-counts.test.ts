import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { loadConfig } from '../../core/config/index.js';
import { createLogger } from '../../core/logger.js';
import { takeBackup } from '../../worker/backup.js';
import { compareCounts, countKeys, groupOf, prefixEnd } from '../../worker/key-counts.js';
import { FileStore } from '../../worker/stores/file.js';
import { fillEtcd, startEtcd, type EtcdServer } from '../support/etcd.js';
import { tempDir } from '../support/tmp.js';

let etcd: EtcdServer;
let work: { path: string; remove: () => Promise<void> };

before(async () => {
  etcd = await startEtcd();
  work = await tempDir('key-counts');
  await fillEtcd(etcd.client, 70, 8, '/registry/pods/ns/');
  await fillEtcd(etcd.client, 5, 8, '/registry/podsecuritypolicies/');
  await fillEtcd(etcd.client, 3, 8, '/other/x/');
  await etcd.client.put('/registry/health').value('ok');
  await etcd.client.put('plain').value('1');
});

after(async () => {
  await etcd?.stop();
  await work?.remove();
});

test('groupOf: Kubernetes resource, first path segment, or the whole key', () => {
  assert.equal(groupOf('/registry/pods/ns/web-1'), '/registry/pods/');
  assert.equal(groupOf('/registry/health'), '/registry/health');
  assert.equal(groupOf('/other/x/1'), '/other/');
  assert.equal(groupOf('compact_rev_key'), 'compact_rev_key');
  assert.equal(groupOf('a/b'), 'a/');
  assert.deepEqual(prefixEnd(Buffer.from('/a/')), Buffer.from('/a0'));
  assert.deepEqual(prefixEnd(Buffer.from([0x61, 0xff])), Buffer.from([0x62]));
});

test('compareCounts: names each prefix that differs', () => {
  const base = { revision: 1, method: 'walk-prefixes' as const, requests: 2, truncated: false, total: 3 };
  assert.deepEqual(compareCounts({ ...base, prefixes: { '/a/': 3 } }, { ...base, prefixes: { '/a/': 3 } }), []);
  assert.deepEqual(compareCounts({ ...base, prefixes: { '/a/': 3 } }, { ...base, prefixes: { '/a/': 2, '/b/': 1 } }), [
    '/a/: 2 keys, expected 3',
    '/b/: 1 keys, expected none',
  ]);
});

test('takeBackup records HashKV and per-prefix counts at the snapshot revision, two requests per prefix', async () => {
  const config = loadConfig({ env: {}, flags: { endpoints: etcd.endpoint } });
  const store = new FileStore(join(work.path, 'store'));
  const manifest = await takeBackup({
    config,
    store,
    log: createLogger({ level: 'warn' }),
    cause: { source: 'manual' },
  });
  assert.deepEqual(manifest.keyCounts?.prefixes, {
    '/other/': 3,
    '/registry/health': 1,
    '/registry/pods/': 70,
    '/registry/podsecuritypolicies/': 5,
    plain: 1,
  });
  assert.equal(manifest.keyCounts?.total, 80);
  assert.equal(manifest.keyCounts?.requests, 2 * 5 + 1);
  assert.equal(manifest.keyCounts?.revision, manifest.etcd.revision);
  assert.equal(manifest.hashKV?.revision, manifest.etcd.revision);
  assert.equal(manifest.hashKV?.currentRevision, manifest.etcd.revision);
  // etcdctl computes the same hash (endpoint hashkv has no revision flag; nothing was written since).
  const out = execFileSync('etcdctl', ['--endpoints', etcd.endpoint, 'endpoint', 'hashkv', '-w', 'json'], {
    env: { ...process.env, ETCDCTL_API: '3' },
  }).toString();
  const [viaEtcdctl] = JSON.parse(out) as { HashKV: { hash: number } }[];
  assert.equal(manifest.hashKV?.hash, viaEtcdctl?.HashKV.hash);

  // Counts are of the revision, not of now.
  await etcd.client.put('/registry/pods/ns/late').value('x');
  const then = await countKeys(etcd.client, manifest.etcd.revision);
  assert.deepEqual(then.prefixes, manifest.keyCounts?.prefixes);
  const bounded = await countKeys(etcd.client, manifest.etcd.revision, 2);
  assert.equal(bounded.truncated, true);
  assert.equal(Object.keys(bounded.prefixes).length, 2);
});
