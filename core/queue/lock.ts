/**
 * One snapshot per cluster at a time, across every worker process: a Redis lock with a token and
 * an expiry, so a crashed holder frees it by itself after `ttlMs`.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { messageOf } from '../errors.js';
import { runScript } from './ledger.js';

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export function clusterLockKey(prefix: string, cluster: string): string {
  return `${prefix}:lock:${cluster}`;
}

export interface HeldLock {
  /** Extends the lock; false when it was lost (expired and perhaps taken by another worker). */
  renew(): Promise<boolean>;
  release(): Promise<void>;
}

/** Takes the lock, or returns undefined when another worker holds it. */
export async function tryLock(redis: Redis, key: string, ttlMs: number, owner: string): Promise<HeldLock | undefined> {
  const token = `${owner}/${randomBytes(6).toString('hex')}`;
  const ok = await redis.set(key, token, 'PX', ttlMs, 'NX');
  if (ok !== 'OK') return undefined;
  return {
    renew: async () => Number(await runScript(redis, RENEW, [key], [token, String(ttlMs)])) === 1,
    release: async () => {
      await runScript(redis, RELEASE, [key], [token]);
    },
  };
}

/**
 * Renews `lock` every third of its lifetime while work runs under it; aborts `controller` when the
 * lock is lost (taken back by Redis, or Redis unreachable for most of a lifetime), so the work
 * stops before another worker takes the cluster.
 */
export function keepLock(lock: HeldLock, lockMs: number, controller: AbortController, log: Logger): NodeJS.Timeout {
  let renewed = Date.now();
  const timer = setInterval(
    () => {
      lock.renew().then(
        (held) => {
          if (held) renewed = Date.now();
          else abortLost();
        },
        (err: unknown) => {
          log.warn({ err: messageOf(err) }, 'renewing the cluster lock failed');
          if (Date.now() - renewed > lockMs * 0.8) abortLost();
        },
      );
    },
    Math.max(250, Math.floor(lockMs / 3)),
  );
  timer.unref();
  function abortLost(): void {
    // Another worker may take the cluster now: stop rather than run two snapshots at once.
    controller.abort(new Error('lost the cluster lock (Redis unreachable for too long); nothing was published'));
  }
  return timer;
}
