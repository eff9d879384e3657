export type { SnapshotJobData, SnapshotJobResult } from './contract.js';
export { connectRedis, describeRedis } from './connection.js';
export { createQueueRecorder, type QueueRecorder } from './recorder.js';
export {
  createSnapshotQueue,
  enqueueManual,
  retryDelay,
  UNLIMITED_ATTEMPTS,
  scheduleId,
  drillScheduleId,
  DRILL_QUEUE_NAME,
  syncSchedule,
  QUEUE_NAME,
  type SnapshotQueue,
} from './queue.js';
export { foldEnded, takeFromLedger, takerOf, MAX_SAMPLES } from './ledger.js';
export {
  clusterLockKey,
  deltaLockKey,
  drillLockKey,
  keepClusterLock,
  keepLock,
  releaseClusterLock,
  tryLock,
  type HeldLock,
} from './lock.js';
export { windowOf, windowId, type DebounceWindow } from './window.js';
export { readQueueStatus, type QueueStatus } from './status.js';
