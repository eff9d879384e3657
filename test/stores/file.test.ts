import { skipOrFailInCi } from '../support/skip.js';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { promisify } from 'node:util';
import { configSchema } from '../../core/config/index.js';
import { FileStore } from '../../worker/stores/file.js';
import { openStore } from '../../worker/stores/open.js';
import { NotFoundError } from '../../worker/stores/store.js';
import { failingStream, MIB, quiet, randomStream, readAll, sha256 } from '../support/store-helpers.js';
import { waitFor } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);

async function storeIn(t: TestContext): Promise<{ store: FileStore; root: string }> {
  const dir = await tempDir('filestore');
  t.after(() => dir.remove());
  return { store: new FileStore(dir.path), root: dir.path };
}

/** Every file under `dir`, temp files included, relative to it. */
async function filesOnDisk(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

test('file: put, list, get and delete', async (t) => {
  const { store, root } = await storeIn(t);
  assert.equal(store.location, `file://${root}`);
  const big = randomStream(MIB + 7);
  assert.deepEqual(await store.put('c1/snapshots/1.db.gz', big.stream), { size: big.data.length });
  assert.deepEqual(await store.put('c1/snapshots/1.manifest.json', Readable.from(['{"ü":1}'])), { size: 8 });
  await store.put('c2/x.db', Readable.from([Buffer.from('x')]));

  const all = await store.list('');
  assert.deepEqual(
    all.map((o) => [o.key, o.size]),
    [
      ['c1/snapshots/1.db.gz', big.data.length],
      ['c1/snapshots/1.manifest.json', 8],
      ['c2/x.db', 1],
    ],
  );
  assert.ok(all.every((o) => o.modified instanceof Date));
  assert.deepEqual(
    (await store.list('c1/snapshots/')).map((o) => o.key),
    ['c1/snapshots/1.db.gz', 'c1/snapshots/1.manifest.json'],
  );
  assert.deepEqual(await store.list('nobody/'), []);

  const got = await store.get('c1/snapshots/1.db.gz');
  assert.equal(got.size, big.data.length);
  assert.equal(sha256(await readAll(got.body)), sha256(big.data));
  await assert.rejects(store.get('c2/none.db'), NotFoundError);

  await store.delete('c2/x.db');
  await store.delete('c2/x.db');
  assert.deepEqual(
    (await store.list('c2/')).map((o) => o.key),
    [],
  );
  await assert.rejects(store.put('../escape.db', quiet(Readable.from(['x']))), /invalid object key/);
});

test('file: openStore maps file URLs and bare paths to a file store', async () => {
  const open = (url: string) => openStore(configSchema.parse({ store: { url } }));
  assert.equal((await open('file:///var/backups/etcd')).location, 'file:///var/backups/etcd');
  assert.equal((await open('relative/dir')).location, `file://${join(process.cwd(), 'relative/dir')}`);
});

test('file: an object is invisible while it is being written and appears whole', async (t) => {
  const { store, root } = await storeIn(t);
  const body = new PassThrough();
  const putting = store.put('c/1.db', body);
  body.write(Buffer.alloc(256 * 1024, 1));
  // Wait until the bytes reached the disk (the temp file has them), then look.
  await waitFor('the first bytes in the temp file', async () => {
    const temp = (await filesOnDisk(root)).find((f) => f.startsWith('c/1.db.partial-'));
    return temp !== undefined && (await readFile(join(root, temp))).length > 0;
  });
  assert.deepEqual(await store.list(''), [], 'the temp file is not listed');
  await assert.rejects(store.get('c/1.db'), NotFoundError);
  body.end(Buffer.alloc(1000, 2));
  assert.deepEqual(await putting, { size: 256 * 1024 + 1000 });
  assert.deepEqual(await filesOnDisk(root), ['c/1.db'], 'no temp file is left');
  assert.deepEqual(
    (await store.list('')).map((o) => [o.key, o.size]),
    [['c/1.db', 256 * 1024 + 1000]],
  );
});

test('file: a failing input leaves nothing behind and keeps an older object', async (t) => {
  const { store, root } = await storeIn(t);
  await store.put('c/keep.db', Readable.from([Buffer.from('old')]));
  const boom = new Error('snapshot stream broke');
  const body = failingStream(300 * 1024, boom);
  await assert.rejects(
    store.put('c/new.db', body),
    /writing "c\/new\.db" to file:\/\/.* failed: snapshot stream broke/,
  );
  assert.equal(body.errored, boom);
  // Overwriting an object with a failed put leaves the old one whole.
  await assert.rejects(store.put('c/keep.db', failingStream(1000, boom)), /snapshot stream broke/);
  assert.deepEqual(await filesOnDisk(root), ['c/keep.db']);
  assert.deepEqual(await readAll((await store.get('c/keep.db')).body), Buffer.from('old'));
});

test('file: an abort signal stops the write and leaves nothing behind', async (t) => {
  const { store, root } = await storeIn(t);
  const controller = new AbortController();
  const body = quiet(new PassThrough());
  const putting = store.put('c/1.db', body, { signal: controller.signal });
  body.write(Buffer.alloc(1000));
  controller.abort();
  await assert.rejects(putting, /writing "c\/1\.db" .* failed/);
  assert.ok(body.destroyed);
  assert.deepEqual(await filesOnDisk(root), []);
});

test('file: temp files left by a crash are not listed', async (t) => {
  const { store, root } = await storeIn(t);
  await mkdir(join(root, 'c'), { recursive: true });
  await writeFile(join(root, 'c', '2.db.partial-deadbeef'), 'half');
  await store.put('c/1.db', Readable.from(['whole']));
  assert.deepEqual(
    (await store.list('')).map((o) => o.key),
    ['c/1.db'],
  );
});

test('file: a full disk gives a clear error and no visible object', async (t) => {
  const dir = await tempDir('fulldisk');
  let mounted = false;
  t.after(async () => {
    if (mounted) await run('umount', [dir.path]);
    await dir.remove();
  });
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir.path]);
    mounted = true;
  } catch (err) {
    skipOrFailInCi(
      t,
      `cannot mount a 1 MiB tmpfs here (needs root and mount permission): ${(err as Error).message.split('\n')[0]}`,
    );
    return;
  }
  const store = new FileStore(dir.path);
  await store.put('c/small.db', Readable.from([Buffer.from('fits')]));
  const { stream } = randomStream(2 * MIB);
  await assert.rejects(store.put('c/big.db', stream), (err: Error) => {
    assert.match(err.message, /writing "c\/big\.db" to file:\/\/.* failed: ENOSPC: no space left on device/);
    assert.match(err.message, /the volume is full/);
    return true;
  });
  assert.ok(stream.destroyed);
  assert.deepEqual(
    (await store.list('')).map((o) => o.key),
    ['c/small.db'],
  );
  assert.deepEqual(await filesOnDisk(dir.path), ['c/small.db'], 'the partial temp file was removed');
  await assert.rejects(store.get('c/big.db'), NotFoundError);
  // Once space is back, writing works again.
  await store.delete('c/small.db');
  assert.deepEqual(await store.put('c/ok.db', Readable.from([Buffer.alloc(100 * 1024)])), { size: 100 * 1024 });
});
