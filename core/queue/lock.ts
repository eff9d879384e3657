/**
 * One snapshot per cluster at a time, across every worker process: a Redis lock with a token and
 * an expiry, so a crashed holder frees it by itself after `ttlMs`. The same helpers keep the drill
 * lock (drills that run elsewhere, drill.executor job) and the delta-log writer's.
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

/**
 * One drill per cluster at a time when drills run as Kubernetes Jobs: they read only the stored
 * object, so they need not exclude snapshots, only each other (worker/drill-schedule.ts).
 */
export function drillLockKey(prefix: string, cluster: string): string {
  return `${prefix}:drill-lock:${cluster}`;
}

/** The delta-log writer's lock: one writer per cluster (worker/delta/writer.ts). */
export function deltaLockKey(prefix: string, cluster: string): string {
  return `${prefix}:delta-lock:${cluster}`;
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
 * Renews `lock` a few times per lifetime. Calls `onLost` when it is gone (expired, perhaps taken
 * by another worker) or could not be renewed for most of its lifetime, so that the holder stops
 * before another one starts; `onRenewError` hears every failed renewal. Clear the returned timer.
 */
export function keepLock(
  lock: HeldLock,
  ttlMs: number,
  onLost: (why: 'gone' | 'unreachable') => void,
  onRenewError: (err: unknown) => void,
): NodeJS.Timeout {
  let renewed = Date.now();
  const timer = setInterval(
    () => {
      lock.renew().then(
        (held) => {
          if (held) renewed = Date.now();
          else onLost('gone');
        },
        (err: unknown) => {
          onRenewError(err);
          if (Date.now() - renewed > ttlMs * 0.8) onLost('unreachable');
        },
      );
    },
    Math.max(250, Math.floor(ttlMs / 3)),
  );
  timer.unref();
  return timer;
}

/** keepLock for work under the cluster lock: aborts `controller` when the lock is lost. */
export function keepClusterLock(
  lock: HeldLock,
  lockMs: number,
  controller: AbortController,
  log: Logger,
): NodeJS.Timeout {
  // Another worker may take the cluster once the lock is lost: stop rather than run two snapshots at once.
  return keepLock(
    lock,
    lockMs,
    (why) => {
      if (controller.signal.aborted) return;
      const reason =
        why === 'gone'
          ? 'lost the cluster lock (it expired or another worker holds it now)'
          : 'lost the cluster lock (Redis unreachable for too long)';
      log.warn(`${reason}; stopping the work under it`);
      controller.abort(new Error(reason));
    },
    (err) => log.warn({ err: messageOf(err) }, 'renewing the cluster lock failed'),
  );
}

/** Releases the cluster lock after work; a failure is logged, never thrown (the lock expires by itself). */
export async function releaseClusterLock(lock: HeldLock, log: Logger): Promise<void> {
  await lock
    .release()
    .catch((err: unknown) =>
      log.warn({ err: messageOf(err) }, 'releasing the cluster lock failed; it expires by itself'),
    );
}
