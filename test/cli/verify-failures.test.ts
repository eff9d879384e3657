import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, runCliOk } from '../support/cli.js';
import { fillEtcd, startEtcd, type EtcdServer } from '../support/etcd.js';
import { tempDir } from '../support/tmp.js';

interface SnapshotInfo {
  id: string;
  key: string;
  sha256: string;
}

let etcd: EtcdServer;
let work: { path: string; remove: () => Promise<void> };
let common: string[];
let store: string;

before(async () => {
  etcd = await startEtcd();
  work = await tempDir('cli-verify');
  await fillEtcd(etcd.client, 300, 64);
  store = join(work.path, 'store');
  common = ['--endpoints', etcd.endpoint, '--store', `file://${store}`];
});

after(async () => {
  await etcd?.stop();
  await work?.remove();
});

async function snapshot(...extra: string[]): Promise<SnapshotInfo> {
  return JSON.parse((await runCliOk(['snapshot', ...common, '--json', ...extra])).stdout) as SnapshotInfo;
}

async function flipMiddleByte(key: string): Promise<void> {
  const file = join(store, key);
  const bytes = await readFile(file);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] as number) ^ 0xff;
  await writeFile(file, bytes);
}

/** Restores `id` into a fresh path and checks that the failure left nothing behind. */
async function assertRestoreRefused(id: string, expected: RegExp): Promise<void> {
  const parent = join(work.path, `restore-${id}`);
  await mkdir(parent);
  const dataDir = join(parent, 'etcd-data');
  const r = await runCli(['restore', id, ...common, '--data-dir', dataDir]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, expected);
  assert.deepEqual(await readdir(parent), [], 'no data dir and no temporary sibling may be left');
}

function assertNoStack(stderr: string): void {
  assert.doesNotMatch(stderr, /^\s+at /m);
}

test('one flipped byte in a gzip object: verify and restore fail, nothing is restored', async () => {
  const snap = await snapshot();
  await flipMiddleByte(snap.key);
  const r = await runCli(['verify', snap.id, ...common]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`error: snapshot ${snap.id} \\(.*\\) is corrupt`));
  assertNoStack(r.stderr);
  assert.equal(r.stdout, '');
  await assertRestoreRefused(snap.id, /is corrupt/);
});

test('one flipped byte in an uncompressed object: the SHA-256 trailer check catches it', async () => {
  const snap = await snapshot('--compression', 'none');
  await flipMiddleByte(snap.key);
  const r = await runCli(['verify', snap.id, ...common]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is corrupt: SHA-256 mismatch/);
  await assertRestoreRefused(snap.id, /SHA-256 mismatch/);
});

test('a truncated object fails verify and restore', async () => {
  const snap = await snapshot();
  const file = join(store, snap.key);
  await truncate(file, Math.floor((await readFile(file)).length / 2));
  const r = await runCli(['verify', snap.id, ...common]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is \d+ bytes but its manifest says \d+: the object is truncated/);
  await assertRestoreRefused(snap.id, /truncated/);
});

test('an object that does not match its manifest fails verify', async () => {
  const snap = await snapshot();
  const manifestFile = join(store, snap.key.replace(/\.db(\.gz|\.zst)?$/, '.manifest.json'));
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as { sha256: string };
  manifest.sha256 = 'f'.repeat(64);
  await writeFile(manifestFile, JSON.stringify(manifest));
  const r = await runCli(['verify', snap.id, ...common]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(`does not match its manifest: the database hashes to ${snap.sha256} but the manifest says f{64}`),
  );
});

test('a missing object fails verify with what is missing', async () => {
  const snap = await snapshot();
  await rm(join(store, snap.key));
  const r = await runCli(['verify', snap.id, ...common]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is missing: its manifest exists but the object does not/);
  const listed = await runCliOk(['list', ...common, '--json']);
  assert.ok(
    !(JSON.parse(listed.stdout) as { id: string }[]).some((m) => m.id === snap.id),
    'a snapshot without its object is not listed',
  );
  assert.match(listed.stderr, /its snapshot object .* is missing/);
});

test('restore refuses a non-empty data dir and leaves it as it was', async () => {
  const snap = await snapshot();
  const dataDir = join(work.path, 'busy');
  await mkdir(dataDir);
  await writeFile(join(dataDir, 'keep.txt'), 'precious');
  const r = await runCli(['restore', snap.id, ...common, '--data-dir', dataDir]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`--data-dir ${dataDir} is not empty`));
  assertNoStack(r.stderr);
  assert.deepEqual(await readdir(dataDir), ['keep.txt']);
  assert.deepEqual(
    (await readdir(work.path)).filter((n) => n.includes('restoring')),
    [],
  );
});

test('an unknown id says how to see the ids', async () => {
  for (const cmd of ['verify', 'restore']) {
    const args = cmd === 'restore' ? ['--data-dir', join(work.path, 'never')] : [];
    const r = await runCli([cmd, '20000101T000000Z-r1-abcd', ...common, ...args]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /no snapshot "20000101T000000Z-r1-abcd" of cluster "default" in file:\/\/.*; run "etcd-autobackup list"/,
    );
  }
  const r = await runCli(['verify', '../../etc/passwd', ...common]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is not a snapshot id .*etcd-autobackup list/);
});

test('latest with an empty store says how to take one', async () => {
  const r = await runCli(['verify', 'latest', '--store', `file://${join(work.path, 'empty-store')}`]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no snapshots of cluster "default" in .* yet; take one with "etcd-autobackup snapshot"/);
});
