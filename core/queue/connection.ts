/**
 * Redis connections for the queue, from `config.redis`: a URL (rediss:// for TLS), an optional
 * password, or Sentinels. The mapping to ioredis options is pure so it can be tested without a
 * server; `describeRedis` is the only form of the address that may reach a log.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config/index.js';
import { ConfigError } from '../errors.js';

export type RedisConfig = Config['redis'];

/**
 * `producer`: webhook side. Commands fail fast while Redis is away (no offline queue, a command
 * timeout) because the caller keeps triggers in memory and retries on its own.
 * `worker`: BullMQ's blocking worker connection, which BullMQ requires to retry forever
 * (`maxRetriesPerRequest: null`).
 */
export type RedisRole = 'producer' | 'worker';

export function redisOptions(redis: RedisConfig, role: RedisRole): RedisOptions {
  let url: URL;
  try {
    url = new URL(redis.url);
  } catch {
    throw new ConfigError('redis.url: not a valid URL (expected redis://host:6379 or rediss://host:6380)');
  }
  const tls = url.protocol === 'rediss:';
  const password = redis.password ?? (url.password ? decodeURIComponent(url.password) : undefined);
  const username = url.username ? decodeURIComponent(url.username) : undefined;
  const db = dbOf(url);

  const common: RedisOptions = {
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    ...(db !== undefined ? { db } : {}),
    ...(tls ? { tls: { servername: stripBrackets(url.hostname) } } : {}),
    connectionName: `etcd-autobackup-${role}`,
    connectTimeout: 5_000,
    // Keep trying: an outage ends when Redis is back, not when a retry budget runs out.
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 3_000),
    ...(role === 'worker'
      ? { maxRetriesPerRequest: null, enableReadyCheck: true }
      : { maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: 5_000 }),
  };

  if (redis.sentinels.length > 0) {
    return {
      ...common,
      sentinels: redis.sentinels.map((s) => {
        const i = s.lastIndexOf(':');
        return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
      }),
      name: redis.sentinelName,
      ...(tls ? { enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
    };
  }
  return { ...common, host: stripBrackets(url.hostname) || '127.0.0.1', port: url.port ? Number(url.port) : 6379 };
}

/** A new connection; errors are reported by the caller's own listeners, not thrown. */
export function connectRedis(redis: RedisConfig, role: RedisRole): Redis {
  const client = new Redis({ ...redisOptions(redis, role), lazyConnect: false });
  return client;
}

/** Where Redis is, without credentials: `redis://host:6379/0` or `sentinel mymaster@h1:26379,h2:26379`. */
export function describeRedis(redis: RedisConfig): string {
  if (redis.sentinels.length > 0) return `sentinel ${redis.sentinelName}@${redis.sentinels.join(',')}`;
  try {
    const url = new URL(redis.url);
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  } catch {
    return 'redis (invalid URL)';
  }
}

function dbOf(url: URL): number | undefined {
  const path = url.pathname.replace(/^\//, '');
  if (path === '') return undefined;
  const db = Number(path);
  if (!Number.isInteger(db) || db < 0)
    throw new ConfigError(`redis.url: the path must be a database number like /0 (got "/${path}")`);
  return db;
}

function stripBrackets(host: string): string {
  return host.replace(/^\[|\]$/g, '');
}
