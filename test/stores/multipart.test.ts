import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { multipartPut, PartPool, type MultipartTarget } from '../../worker/stores/multipart.js';
import { quiet } from '../support/store-helpers.js';

function fakeTarget(): MultipartTarget & { buffers: Set<ArrayBufferLike>; stored: Buffer[] } {
  const buffers = new Set<ArrayBufferLike>();
  const stored: Buffer[] = [];
  const t = {
    buffers,
    stored,
    single: (data: Buffer) => {
      stored.push(Buffer.from(data));
      return Promise.resolve();
    },
    create: () => Promise.resolve('up-1'),
    part: async (_id: string, num: number, data: Buffer) => {
      buffers.add(data.buffer);
      await new Promise((r) => setTimeout(r, 1));
      stored[num - 1] = Buffer.from(data);
      return `etag-${num}`;
    },
    complete: (_id: string, parts: { num: number; etag: string }[]) => {
      assert.deepEqual(
        parts.map((p) => p.num),
        parts.map((_, i) => i + 1),
      );
      return Promise.resolve();
    },
    abort: () => Promise.resolve('; aborted'),
    remove: () => Promise.resolve(),
    describe: (err: unknown) => String(err),
  };
  return t;
}

test('multipartPut: many parts through at most `parallel` reused buffers, bytes in order', async () => {
  const input = Buffer.alloc(1000 * 37 + 11);
  for (let i = 0; i < input.length; i++) input[i] = (i * 7) % 251;
  const chunks = Array.from({ length: Math.ceil(input.length / 333) }, (_, i) =>
    input.subarray(i * 333, (i + 1) * 333),
  );
  const target = fakeTarget();
  const { size } = await multipartPut(Readable.from(chunks), target, {
    key: 'k',
    where: 'w',
    partSize: 1000,
    parallel: 3,
  });
  assert.equal(size, input.length);
  assert.equal(target.stored.length, 38);
  assert.deepEqual(Buffer.concat(target.stored), input);
  assert.ok(target.buffers.size <= 3, `${target.buffers.size} part buffers`);
});

test('multipartPut: an input shorter than a part is a single PUT; a failed part aborts and destroys the input', async () => {
  const small = fakeTarget();
  await multipartPut(Readable.from([Buffer.from('hello')]), small, {
    key: 'k',
    where: 'w',
    partSize: 1000,
    parallel: 2,
  });
  assert.deepEqual(small.stored, [Buffer.from('hello')]);

  const failing = fakeTarget();
  let aborted = 0;
  failing.part = () => Promise.reject(new Error('HTTP 500'));
  failing.abort = () => {
    aborted++;
    return Promise.resolve('; the multipart upload was aborted');
  };
  const body = quiet(Readable.from(Array.from({ length: 50 }, () => Buffer.alloc(1000))));
  await assert.rejects(
    multipartPut(body, failing, { key: 'k', where: 'w', partSize: 1000, parallel: 2 }),
    /upload of "k" to w failed at part 1: Error: HTTP 500; the multipart upload was aborted/,
  );
  assert.equal(aborted, 1);
  assert.ok(body.destroyed && body.errored instanceof Error);
});

test('PartPool: never allocates more than its capacity; acquire waits for a release', async () => {
  const pool = new PartPool(10, 2);
  const a = await pool.acquire();
  const b = await pool.acquire();
  let third: Buffer | undefined;
  const waiting = pool.acquire().then((x) => (third = x));
  await new Promise((r) => setImmediate(r));
  assert.equal(third, undefined);
  pool.release(a);
  await waiting;
  assert.equal(third, a);
  assert.equal(pool.allocated, 2);
  pool.release(b);
});
