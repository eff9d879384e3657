import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { findEtcdTools, parseToolVersion, restoreArgv, statusArgv } from '../../worker/etcd-tools.js';
import type { Manifest } from '../../worker/manifest.js';
import { restoreSnapshot } from '../../worker/restore.js';
import { FileStore } from '../../worker/stores/file.js';
import { verifySnapshot } from '../../worker/verify.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { FAKE_ETCDUTL_VERSION, writeEtcdutlWrapper } from '../support/etcdutl-wrapper.js';
import { freePort } from '../support/ports.js';
import { startSnapshotFixture } from '../support/snapshot-fixture.js';

const KEYS = 300;
let etcd: EtcdServer;
let work: { path: string; remove: () => Promise<void> };
let store: FileStore;
let manifest: Manifest;

before(async () => {
  ({ etcd, work, store, manifest } = await startSnapshotFixture('etcd-tools', KEYS, 16));
});

after(async () => {
  await etcd?.stop();
  await work?.remove();
});

test('restoreArgv/statusArgv: the command lines etcdutl 3.6 documents (and etcdctl 3.4 accepts)', () => {
  assert.deepEqual(
    restoreArgv({
      file: '/s.db',
      dataDir: '/d',
      name: 'm1',
      initialCluster: 'm1=http://127.0.0.1:2380',
      initialClusterToken: 't',
      initialAdvertisePeerUrls: 'http://127.0.0.1:2380',
      skipHashCheck: true,
    }),
    [
      'snapshot',
      'restore',
      '/s.db',
      '--data-dir',
      '/d',
      '--name',
      'm1',
      '--initial-cluster',
      'm1=http://127.0.0.1:2380',
      '--initial-cluster-token',
      't',
      '--initial-advertise-peer-urls',
      'http://127.0.0.1:2380',
      '--skip-hash-check',
    ],
  );
  assert.deepEqual(restoreArgv({ file: 'f', dataDir: 'd' }), ['snapshot', 'restore', 'f', '--data-dir', 'd']);
  assert.deepEqual(statusArgv('f'), ['snapshot', 'status', 'f', '-w', 'json']);
  assert.equal(parseToolVersion('etcdutl version: 3.6.0\nAPI version: 3.6\n'), '3.6.0');
  assert.equal(parseToolVersion('etcdctl version: 3.4.23\nAPI version: 3.4\n'), '3.4.23');
  assert.equal(parseToolVersion('something else'), 'unknown');
});

/** Restores with whatever PATH says, boots a real etcd on the result and counts the keys. */
async function restoreAndBoot(label: string): Promise<{ tool: string; version: string }> {
  const dataDir = join(work.path, `restored-${label}`);
  const peer = `http://127.0.0.1:${await freePort()}`;
  const report = await restoreSnapshot({
    store,
    manifest,
    dataDir,
    etcdctl: 'etcdctl',
    member: { name: 'default', initialAdvertisePeerUrls: peer, initialClusterToken: `tok-${label}` },
  });
  assert.equal(report.status.revision, manifest.etcd.revision);
  const restored = await startEtcd({ dataDir, name: 'default' });
  try {
    const keys = await restored.client.getAll().prefix('/registry/test/').keys();
    assert.equal(keys.length, KEYS, `${label}: every key is back`);
  } finally {
    await restored.stop();
  }
  return { tool: report.tool.name, version: report.tool.version };
}

test('etcdctl 3.4 path: without etcdutl on PATH, etcdctl restores a data dir etcd boots with every key', async () => {
  const found = await findEtcdTools({ etcdctl: 'etcdctl' });
  assert.equal(found.name, 'etcdctl', 'this host has no etcdutl');
  assert.match(found.version, /^3\.4\./);
  assert.deepEqual(await restoreAndBoot('etcdctl'), { tool: 'etcdctl', version: found.version });
});

test('etcdutl path: an etcdutl first on PATH is preferred and called with etcdutl 3.6 argv only', async () => {
  // The wrapper (test/support/etcdutl-wrapper.ts) checks each argv is etcdutl 3.6's and delegates to etcdctl 3.4.
  const wrapper = await writeEtcdutlWrapper(join(work.path, 'utl'));
  const saved = process.env.PATH;
  process.env.PATH = `${wrapper.bin}${delimiter}${saved ?? ''}`;
  try {
    assert.deepEqual(await restoreAndBoot('etcdutl'), { tool: 'etcdutl', version: FAKE_ETCDUTL_VERSION });
    const verified = await verifySnapshot({ store, manifest, etcdctl: 'etcdctl' });
    assert.equal(verified.tool.name, 'etcdutl');
  } finally {
    process.env.PATH = saved;
  }
  const calls = (await readFile(wrapper.log, 'utf8')).trim().split('\n');
  const verbs = calls.map((c) => c.split(' ')[0]);
  // restore runs status and restore side by side, so those two are logged in either order.
  assert.deepEqual(
    [verbs[0], [verbs[1], verbs[2]].sort(), ...verbs.slice(3)],
    ['version', ['restore', 'status'], 'version', 'status'],
  );
  // --skip-hash-check: restore hashes the file itself, beside the tool (restore.ts).
  assert.match(
    calls.find((c) => c.startsWith('restore ')) ?? '',
    /^restore \S+snapshot\.db --data-dir \S+ --name default --initial-cluster default=http:\/\/127\.0\.0\.1:\d+ --initial-cluster-token tok-etcdutl --initial-advertise-peer-urls http:\/\/127\.0\.0\.1:\d+ --skip-hash-check$/,
  );
});

test('findEtcdTools: neither tool is explained', async () => {
  await assert.rejects(
    findEtcdTools({ etcdctl: 'no-such-etcdctl', env: { PATH: join(work.path, 'empty') } }),
    /neither "etcdutl" nor "no-such-etcdctl" was found; install etcdutl \(etcd 3\.5\+\) or etcdctl 3\.4/,
  );
});
