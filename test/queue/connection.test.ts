import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../core/config/index.js';
import { describeRedis, redisOptions } from '../../core/queue/connection.js';

const redis = (r: object) => configSchema.parse({ redis: r }).redis;

test('a redis:// URL maps to host, port, db and the URL password', () => {
  const o = redisOptions(redis({ url: 'redis://:s3cret@10.0.0.5:6380/2' }), 'producer');
  assert.equal(o.host, '10.0.0.5');
  assert.equal(o.port, 6380);
  assert.equal(o.db, 2);
  assert.equal(o.password, 's3cret');
  assert.equal(o.tls, undefined);
  assert.equal(o.enableOfflineQueue, false, 'producers fail fast and keep triggers in memory');
});

test('rediss:// turns TLS on; config.redis.password wins over the URL', () => {
  const o = redisOptions(redis({ url: 'rediss://user:inurl@redis.example:6380', password: 'fromconfig' }), 'worker');
  assert.deepEqual(o.tls, { servername: 'redis.example' });
  assert.equal(o.username, 'user');
  assert.equal(o.password, 'fromconfig');
  assert.equal(o.maxRetriesPerRequest, null, 'BullMQ workers need maxRetriesPerRequest: null');
});

test('sentinels replace the URL host and name the master set', () => {
  const o = redisOptions(
    redis({ sentinels: ['10.0.0.1:26379', 'sentinel-b:26380'], sentinelName: 'main', password: 'pw' }),
    'producer',
  );
  assert.deepEqual(o.sentinels, [
    { host: '10.0.0.1', port: 26379 },
    { host: 'sentinel-b', port: 26380 },
  ]);
  assert.equal(o.name, 'main');
  assert.equal(o.password, 'pw');
  assert.equal(o.host, undefined);
});

test('the description never shows a password', () => {
  const d = describeRedis(redis({ url: 'redis://:s3cret@10.0.0.5:6380/2' }));
  assert.equal(d, 'redis://10.0.0.5:6380/2');
  assert.ok(!d.includes('s3cret'));
});

test('a database path that is not a number is an error naming redis.url', () => {
  assert.throws(() => redisOptions(redis({ url: 'redis://h:6379/abc' }), 'producer'), /redis\.url/);
});
