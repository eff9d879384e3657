import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { configSchema } from '../../core/config/index.js';
import { chooseMember } from '../../worker/etcd-members.js';

const DIAL_MS = 2_000;

test('an etcd endpoint that accepts TCP and never speaks fails within the dial timeout, naming the endpoint', async () => {
  const sockets = new Set<Socket>();
  const silent = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const address = silent.address();
  assert.ok(address && typeof address === 'object');
  const endpoint = `http://127.0.0.1:${address.port}`;
  const config = configSchema.parse({ etcd: { endpoints: [endpoint], dialTimeout: `${DIAL_MS}ms` } });
  try {
    const started = Date.now();
    await assert.rejects(chooseMember(config.etcd), (err: Error) => {
      assert.ok(err.message.includes(endpoint), err.message);
      assert.match(err.message, /dial timeout/);
      return true;
    });
    const took = Date.now() - started;
    // Generous (a busy machine): before the fix the client's own retries took ~3.6x the dial timeout.
    assert.ok(took < 3 * DIAL_MS, `took ${took} ms for a ${DIAL_MS} ms dial timeout`);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});
