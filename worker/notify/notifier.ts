/**
 * What the worker tells the outside world about its outcomes (Kubernetes Events, webhooks). The
 * pool and the drill paths call these and never wait on them: each implementation bounds its own
 * time, and counts and logs its own failures, so a slow or broken receiver cannot block or fail a
 * snapshot.
 */
import type { DrillRecord } from '../drill.js';
import type { Manifest } from '../manifest.js';

export interface SnapshotFailure {
  cluster: string;
  jobId: string;
  /** The attempt that failed (1-based). */
  attempt: number;
  /** The stage that failed (SNAPSHOT_STAGES) or `other`. */
  stage: string;
  message: string;
  /** Whether the job runs again. */
  retrying: boolean;
}

export interface Notifier {
  snapshotPublished(manifest: Manifest): void;
  snapshotFailed(failure: SnapshotFailure): void;
  drillFinished(record: DrillRecord): void;
}

/** One notifier calling several. */
export function fanOut(notifiers: readonly Notifier[]): Notifier {
  return {
    snapshotPublished: (m) => notifiers.forEach((n) => n.snapshotPublished(m)),
    snapshotFailed: (f) => notifiers.forEach((n) => n.snapshotFailed(f)),
    drillFinished: (r) => notifiers.forEach((n) => n.drillFinished(r)),
  };
}
