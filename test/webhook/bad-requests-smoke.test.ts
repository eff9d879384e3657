import { test } from 'node:test';
import assert from 'node:assert/strict';
import { badCases, runBadRequests } from '../../bench/bad-requests.js';

test('the bad-request generator makes 100+ kinds', () => {
  assert.ok(badCases(false).length >= 100, String(badCases(false).length));
});

test('smoke: hostile requests against a real webhook process get no 5xx, and valid requests still work after', async () => {
  const r = await runBadRequests(true);
  assert.equal(r.fivexx, 0);
  assert.equal(r.validOk, true);
});
