import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, runCliOk } from '../support/cli.js';
import { fillEtcd, startEtcd, type EtcdServer } from '../support/etcd.js';
import { tempDir } from '../support/tmp.js';

let etcd: EtcdServer;
let work: { path: string; remove: () => Promise<void> };
let common: string[];
let store: string;
let scratch: string;

before(async () => {
  etcd = await startEtcd();
  work = await tempDir('cli-drill');
  await fillEtcd(etcd.client, 50, 16);
  store = join(work.path, 'store');
  scratch = join(work.path, 'scratch');
  const config = join(work.path, 'config.yaml');
  await writeFile(config, `drill:\n  scratchDir: ${scratch}\n  freeSpaceMargin: 0\n`);
  common = ['--endpoints', etcd.endpoint, '--store', `file://${store}`, '--config', config];
});

after(async () => {
  await etcd?.stop();
  await work?.remove();
});

test('drill latest passes, writes its record, and list shows it; a corrupt snapshot exits 1 with the reason', async () => {
  const snap = JSON.parse((await runCliOk(['snapshot', ...common, '--json'])).stdout) as { id: string; key: string };
  const out = await runCliOk(['drill', ...common]);
  assert.match(out.stdout, new RegExp(`snapshot ${snap.id}: drill PASSED`));
  assert.match(out.stdout, /ok +hashkv/);
  assert.deepEqual(await readdir(scratch), []);
  const record = JSON.parse(await readFile(join(store, 'default', 'snapshots', `${snap.id}.drill.json`), 'utf8')) as {
    ok: boolean;
  };
  assert.equal(record.ok, true);
  assert.match((await runCliOk(['list', ...common])).stdout, /LAST DRILL[\s\S]*passed 20/);

  const file = join(store, snap.key);
  const bytes = await readFile(file);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] as number) ^ 0xff;
  await writeFile(file, bytes);
  const failed = await runCli(['drill', snap.id, ...common, '--json']);
  assert.equal(failed.code, 1);
  const json = JSON.parse(failed.stdout) as { ok: boolean; failure: string };
  assert.equal(json.ok, false);
  assert.match(json.failure, /^download: /);
  assert.match(failed.stderr, /drill of \S+ failed: download: /);
});
