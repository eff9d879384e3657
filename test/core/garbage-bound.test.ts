/**
 * core/garbage-bound.ts: when a stream's garbage gets a full collection, by example, and that the
 * collection it uses really frees promoted array buffers that V8 alone would keep.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectionDue, GarbageBound, memoryInUse, signalMemoryPressure } from '../../core/garbage-bound.js';

const MIB = 1024 * 1024;
const policy = { budgetBytes: 16 * MIB, checkEveryBytes: 8 * MIB, minBytesBetween: 64 * MIB };

test('a collection is due only past the budget and after enough of the stream', () => {
  const due = (inUse: number, bytesSinceLast: number) =>
    collectionDue(policy, { inUse: inUse * MIB, afterLast: 40 * MIB, bytesSinceLast: bytesSinceLast * MIB });
  assert.equal(due(56, 64), false, 'growth equal to the budget is within it');
  assert.equal(due(57, 64), true);
  assert.equal(due(57, 63), false, 'too soon after the last collection, whatever the growth');
  assert.equal(due(200, 63), false);
  assert.equal(due(30, 1000), false, 'memory below the last baseline');
});

test('the bound looks at memory every checkEveryBytes and asks for a collection when due', () => {
  let memory = 40 * MIB;
  const looks: number[] = [];
  let collections = 0;
  const bound = new GarbageBound(
    policy,
    () => (looks.push(memory), memory),
    () => collections++,
  );
  looks.length = 0;
  for (let i = 0; i < 7; i++) bound.observe(MIB);
  assert.equal(looks.length, 0, 'no look before 8 MiB of stream');
  bound.observe(MIB);
  assert.equal(looks.length, 1);
  memory = 60 * MIB;
  for (let i = 0; i < 56; i++) bound.observe(MIB);
  assert.equal(collections, 1, 'asked at 64 MiB of stream, 20 MiB over the baseline');
  assert.equal(bound.collections, 1);
  for (let i = 0; i < 64; i++) bound.observe(MIB);
  assert.equal(collections, 1, 'V8 has not collected yet: no growth over the reading it was asked at');
  // V8 collected: the next reading is the new baseline.
  memory = 42 * MIB;
  for (let i = 0; i < 8; i++) bound.observe(MIB);
  memory = 58 * MIB;
  for (let i = 0; i < 64; i++) bound.observe(MIB);
  assert.equal(collections, 1, '16 MiB over the new baseline (42 MiB) is within the budget');
  memory = 59 * MIB;
  for (let i = 0; i < 8; i++) bound.observe(MIB);
  assert.equal(collections, 2);
});

test('a lower reading moves the baseline down, so growth is counted from there', () => {
  let memory = 50 * MIB;
  let collections = 0;
  const bound = new GarbageBound(
    policy,
    () => memory,
    () => collections++,
  );
  memory = 30 * MIB;
  for (let i = 0; i < 64; i++) bound.observe(MIB);
  memory = 47 * MIB;
  for (let i = 0; i < 8; i++) bound.observe(MIB);
  assert.equal(collections, 1, '17 MiB over 30 MiB, though under the first reading of 50');
});

test('the pressure signal gets the promoted array buffers that scavenges leave collected', async () => {
  const dropped = promoteAndDrop();
  const before = process.memoryUsage().arrayBuffers;
  assert.ok(before >= 30 * MIB, `the buffers are still counted (${before} bytes)`);
  // Only a full collection frees promoted buffers, and V8 starts none for this little garbage alone.
  signalMemoryPressure();
  let after = before;
  for (let i = 0; i < 200 && after > before - 30 * MIB; i++) {
    churn(30_000);
    await new Promise((resolve) => setImmediate(resolve));
    after = process.memoryUsage().arrayBuffers;
  }
  assert.ok(after <= before - 30 * MIB, `collected: ${before} -> ${after} bytes (memory in use was ${dropped})`);
});

const objects: object[] = [];
/** Short-lived objects, so that scavenges run (and marking steps with them). */
function churn(n: number): void {
  for (let i = 0; i < n; i++) objects[i % 1000] = { i };
}

/** 32 MiB of buffers alive across scavenges (so promoted), unreachable once this returns; memory in use then. */
function promoteAndDrop(): number {
  const kept: Buffer[] = [];
  for (let i = 0; i < 1024; i++) {
    kept.push(Buffer.allocUnsafe(32 * 1024));
    churn(3000);
  }
  churn(300_000);
  kept.length = 0;
  return memoryInUse();
}
