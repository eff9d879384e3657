import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualJobId, windowJobDelay, windowJobId, windowOf } from '../../core/queue/window.js';

const FIVE_MIN = 5 * 60_000;
const at = (iso: string) => Date.parse(iso);

test('windows are aligned on the epoch, so every process names the same one', () => {
  const a = windowOf(at('2026-11-24T03:25:00.000Z'), FIVE_MIN);
  const b = windowOf(at('2026-11-24T03:29:59.999Z'), FIVE_MIN);
  const c = windowOf(at('2026-11-24T03:30:00.000Z'), FIVE_MIN);
  assert.deepEqual(a, b);
  assert.equal(a.id, '20261124T032500Z');
  assert.equal(a.end, at('2026-11-24T03:30:00.000Z'));
  assert.equal(c.id, '20261124T033000Z');
  assert.equal(c.start, a.end);
});

test('sub-second windows keep their milliseconds in the id', () => {
  assert.equal(windowOf(at('2026-11-24T03:25:01.700Z'), 1_500).id, '20261124T032501.500Z');
});

test('job ids name cluster, window and generation, without colons', () => {
  const w = windowOf(at('2026-11-24T03:25:00Z'), FIVE_MIN);
  assert.equal(windowJobId('prod-eu-1', w, 0), 'prod-eu-1@20261124T032500Z');
  assert.equal(windowJobId('prod-eu-1', w, 2), 'prod-eu-1@20261124T032500Z+2');
  assert.ok(!windowJobId('a', w, 1).includes(':'));
  assert.ok(!manualJobId('a', Date.now(), 'ab12').includes(':'));
});

test('a job is delayed to the window end plus the settle time, never negative', () => {
  const w = windowOf(at('2026-11-24T03:25:00Z'), FIVE_MIN);
  assert.equal(windowJobDelay(w, at('2026-11-24T03:26:00Z'), 2_000), 4 * 60_000 + 2_000);
  assert.equal(windowJobDelay(w, at('2026-11-24T03:40:00Z'), 2_000), 0);
});

test('a zero window is refused with the setting named', () => {
  assert.throws(() => windowOf(0, 0), /queue\.debounceWindow/);
});
