import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FileStore } from '../../worker/stores/file.js';
import { tempDir } from '../support/tmp.js';

test('the file store writes snapshots 0600 in directories it creates 0700, whatever the umask', async (t) => {
  const dir = await tempDir('filestore-modes');
  t.after(() => dir.remove());
  // With umask 0 only the modes the store asks for stand between a snapshot and other users.
  const old = process.umask(0);
  t.after(() => process.umask(old));
  const root = join(dir.path, 'backups');
  const store = new FileStore(root);
  await store.put('c1/snapshots/a.db', Readable.from([Buffer.from('etcd data')]));
  await store.put('c1/snapshots/a.db.manifest.json', Readable.from([Buffer.from('{}')]));
  const mode = async (p: string) => (await stat(p)).mode & 0o777;
  assert.equal(await mode(join(root, 'c1/snapshots/a.db')), 0o600);
  assert.equal(await mode(join(root, 'c1/snapshots/a.db.manifest.json')), 0o600);
  for (const d of ['', 'c1', 'c1/snapshots']) assert.equal(await mode(join(root, d)), 0o700, d || 'root');
});
