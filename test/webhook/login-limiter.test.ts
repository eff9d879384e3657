import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoginLimiter } from '../../webhook/login-limiter.js';

test('the login limiter allows a burst of failures per client, then refills one per interval', () => {
  let now = 0;
  const limiter = new LoginLimiter({ burst: 3, refillMs: 1_000, maxClients: 2, now: () => now });
  for (let i = 0; i < 3; i++) {
    assert.equal(limiter.retryAfter('a'), 0);
    limiter.failed('a');
  }
  assert.equal(limiter.retryAfter('a'), 1);
  assert.equal(limiter.retryAfter('b'), 0, 'other clients are not affected');
  now += 1_000;
  assert.equal(limiter.retryAfter('a'), 0);
  limiter.failed('a');
  assert.equal(limiter.retryAfter('a'), 1);
  // Past maxClients, the least recently failed client is forgotten.
  limiter.failed('b');
  limiter.failed('c');
  assert.equal(limiter.retryAfter('a'), 0);
});
