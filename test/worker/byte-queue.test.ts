import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteQueue } from '../../worker/crypto/byte-queue.js';

const pieces = (...texts: string[]): Buffer[] => texts.map((t) => Buffer.from(t));
const text = (bufs: Buffer[]): string[] => bufs.map((b) => b.toString());

test('ByteQueue.takePieces: exact amounts across pieces, as subarrays of what was pushed', () => {
  const q = new ByteQueue();
  const [a, b, c] = pieces('abcd', 'efg', 'hijkl');
  for (const p of [a, b, c]) q.push(p as Buffer);
  q.push(Buffer.alloc(0));
  assert.equal(q.length, 12);
  const first = q.takePieces(2);
  assert.deepEqual(text(first), ['ab']);
  // Not copied: the same memory as the piece pushed.
  assert.equal(first[0]?.buffer, a?.buffer);
  assert.equal(first[0]?.byteOffset, a?.byteOffset);
  assert.deepEqual(text(q.takePieces(7)), ['cd', 'efg', 'hi']);
  assert.equal(q.length, 3);
  // take and takePieces share the position.
  assert.equal(q.take(1).toString(), 'j');
  assert.deepEqual(text(q.takePieces(2)), ['kl']);
  assert.equal(q.length, 0);
  assert.deepEqual(q.takePieces(0), []);
  assert.throws(() => q.takePieces(1), RangeError);
});
