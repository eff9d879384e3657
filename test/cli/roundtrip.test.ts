import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { runCliOk } from '../support/cli.js';
import { fillEtcd, startEtcd, type EtcdServer } from '../support/etcd.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

interface Kv {
  key: string;
  value: string;
  create: string;
  mod: string;
  version: string;
}

async function dump(client: Etcd3): Promise<{ kvs: Kv[]; revision: string }> {
  const res = await client.getAll().prefix('/').exec();
  const kvs = res.kvs.map((kv) => ({
    key: kv.key.toString(),
    value: kv.value.toString(),
    create: kv.create_revision,
    mod: kv.mod_revision,
    version: kv.version,
  }));
  return { kvs, revision: res.header.revision };
}

test('round trip: snapshot, list, verify and restore through the CLI give back the same keys and revision', async () => {
  const etcd = await startEtcd();
  const work = await tempDir('cli-roundtrip');
  let restored: EtcdServer | undefined;
  try {
    await fillEtcd(etcd.client, 3000, 64);
    // Distinct values, overwrites and a delete, so that values and per-key revisions are worth comparing.
    for (let i = 0; i < 50; i++) await etcd.client.put(`/registry/pods/ns-${i % 5}/pod-${i}`).value(`{"spec":${i}}`);
    await etcd.client.put('/registry/pods/ns-0/pod-0').value('{"spec":"changed"}');
    await etcd.client.delete().key('/registry/pods/ns-1/pod-1');
    const before = await dump(etcd.client);
    assert.equal(before.kvs.length, 3000 + 49);

    const store = join(work.path, 'store');
    const common = ['--endpoints', etcd.endpoint, '--store', `file://${store}`, '--cluster', 'rt-test'];

    const snap = await runCliOk(['snapshot', ...common, '--json']);
    const manifest = JSON.parse(snap.stdout) as { id: string; key: string; etcd: { revision: number } };
    assert.equal(manifest.etcd.revision, Number(before.revision));

    // An object without a manifest is an unfinished upload, never a snapshot.
    await writeFile(join(store, 'rt-test', 'snapshots', '20991231T000000Z-r1-dead.db.gz'), 'partial');

    const listed = JSON.parse((await runCliOk(['list', ...common, '--json'])).stdout) as { id: string }[];
    assert.deepEqual(
      listed.map((m) => m.id),
      [manifest.id],
    );
    const table = await runCliOk(['list', ...common]);
    assert.match(table.stdout, new RegExp(`^${manifest.id}\\s.*\\s${before.revision}\\s.*zstd\\s+-\\s+manual$`, 'm'));

    const verified = await runCliOk(['verify', 'latest', ...common]);
    assert.match(verified.stdout, new RegExp(`snapshot ${manifest.id}: OK`));
    assert.match(verified.stdout, new RegExp(`revision ${before.revision}, `));
    // Not a TTY: progress comes as log lines on stderr, never on stdout.
    assert.match(verified.stderr, /"msg":"download: [\d.]+ (B|KiB|MiB) \/ [\d.]+ (B|KiB|MiB) \(100%\)/);
    assert.doesNotMatch(verified.stdout, /download:/);

    // An existing empty directory is a valid target (etcdctl 3.4 alone would refuse it).
    const dataDir = join(work.path, 'restored', 'etcd-data');
    await mkdir(dataDir, { recursive: true });
    const peer = `http://127.0.0.1:${await freePort()}`;
    const restore = await runCliOk([
      'restore',
      'latest',
      ...common,
      '--data-dir',
      dataDir,
      '--name',
      'rt',
      '--initial-cluster',
      `rt=${peer}`,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster-token',
      'rt-token',
    ]);
    assert.match(restore.stdout, new RegExp(`restored revision ${before.revision} into ${dataDir}`));
    assert.match(restore.stdout, /next steps:[\s\S]*etcd --name rt --data-dir/);

    restored = await startEtcd({ dataDir, name: 'rt' });
    const after = await dump(restored.client);
    assert.equal(after.revision, before.revision);
    assert.deepEqual(after.kvs, before.kvs);
    const members = await restored.client.cluster.memberList({});
    assert.deepEqual(
      members.members.map((m) => ({ name: m.name, peers: m.peerURLs })),
      [{ name: 'rt', peers: [peer] }],
    );
  } finally {
    await restored?.stop();
    await etcd.stop();
    await work.remove();
  }
});
