import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OffloadedSha256 } from '../../worker/sha256-offload.js';

/** `bytes` cut into pieces of uneven sizes, so pieces straddle the staging buffers' edges. */
function pieces(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = [1, 7000, 65536, 100_003, 3][i % 5] as number;
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

async function through(hash: OffloadedSha256, input: Buffer[]): Promise<Buffer> {
  const got: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      got.push(chunk);
      done();
    },
  });
  await pipeline([Readable.from(input), hash, sink]);
  return Buffer.concat(got);
}

test('a large object is hashed in a thread: the digest is sha256sum of the bytes, which pass through unchanged', async () => {
  const bytes = randomBytes(3 * 1024 * 1024 + 12345);
  // Two 64 KiB buffers for 3 MiB: the stream must wait for buffers to come back, many times.
  const hash = new OffloadedSha256({ bufferBytes: 64 * 1024, buffers: 2 });
  const out = await through(hash, pieces(bytes));
  assert.ok(out.equals(bytes), 'the bytes were changed on their way through');
  assert.equal(hash.threaded, true);
  assert.equal(hash.bytes, bytes.length);
  assert.equal(hash.digest(), createHash('sha256').update(bytes).digest('hex'));
});

test('an object of exactly whole buffers, and one smaller than a buffer (hashed inline, no thread)', async () => {
  const whole = randomBytes(4 * 64 * 1024);
  const a = new OffloadedSha256({ bufferBytes: 64 * 1024, buffers: 3 });
  await through(a, [whole]);
  assert.equal(a.threaded, true);
  assert.equal(a.digest(), createHash('sha256').update(whole).digest('hex'));

  const small = randomBytes(5000);
  const b = new OffloadedSha256({ bufferBytes: 64 * 1024 });
  await through(b, pieces(small));
  assert.equal(b.threaded, false);
  assert.equal(b.digest(), createHash('sha256').update(small).digest('hex'));

  const empty = new OffloadedSha256();
  await through(empty, []);
  assert.equal(empty.digest(), createHash('sha256').digest('hex'));
});

test('a failing stage after the hash fails the pipeline, leaves no digest, and the thread does not keep the process alive', async () => {
  const hash = new OffloadedSha256({ bufferBytes: 64 * 1024, buffers: 2 });
  let seen = 0;
  const failing = new Transform({
    transform(chunk: Buffer, _e, done: TransformCallback) {
      seen += chunk.length;
      done(seen > 1024 * 1024 ? new Error('upload failed') : null, chunk);
    },
  });
  const sink = new Writable({ write: (_c: Buffer, _e, done) => done() });
  await assert.rejects(
    pipeline([Readable.from(pieces(randomBytes(3 * 1024 * 1024))), hash, failing, sink]),
    /upload failed/,
  );
  assert.equal(hash.threaded, true);
  assert.throws(() => hash.digest(), /not hashed yet/);
  // A thread left running would keep node:test from finishing this file.
});
