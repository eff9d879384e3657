export type { Change, ChangeRecorder, SnapshotJobData, SnapshotJobResult } from './contract.js';
export { connectRedis, describeRedis, redisOptions, type RedisConfig, type RedisRole } from './connection.js';
export { createQueueRecorder, type QueueRecorder, type QueueRecorderOptions, type RecorderStatus } from './recorder.js';
export {
  createSnapshotQueue,
  enqueueManual,
  jobOptions,
  retryDelay,
  UNLIMITED_ATTEMPTS,
  scheduleId,
  drillScheduleId,
  DRILL_QUEUE_NAME,
  syncSchedule,
  JOB_NAME,
  QUEUE_NAME,
  type ManualCause,
  type SnapshotQueue,
} from './queue.js';
export {
  foldEnded,
  ledgerKeys,
  openWindows,
  openWindowsKey,
  takeFromLedger,
  takerOf,
  MAX_SAMPLES,
  type Counts,
  type Folded,
  type OpenWindow,
  type Taken,
} from './ledger.js';
export {
  clusterLockKey,
  deltaLockKey,
  keepClusterLock,
  keepLock,
  releaseClusterLock,
  tryLock,
  type HeldLock,
} from './lock.js';
export { windowOf, windowId, windowJobId, windowJobDelay, type DebounceWindow } from './window.js';
export { readQueueStatus, type FailedAttempt, type PendingJob, type QueueStatus } from './status.js';
