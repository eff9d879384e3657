/**
 * The contract between trigger sources and the queue. Every trigger source (audit, admission,
 * etcd watch, schedule, manual) calls only `ChangeRecorder.record`; the queue module decides the
 * window, deduplicates and survives Redis outages.
 */
import type { TriggerSource } from '../cause.js';

export interface Change {
  source: TriggerSource;
  /** What changed, e.g. `apps/deployments shop/web` or an etcd key; a few are kept as samples. */
  resource?: string;
  /** When the change happened (arrival time when unknown). */
  at: Date;
}

export interface ChangeRecorder {
  /**
   * Records a change. Never throws and never waits on Redis: the admission webhook calls it on
   * the apiserver's request path. Changes that cannot reach Redis now are kept and sent later.
   */
  record(change: Change): void;
}

/** The data of one snapshot job; read by the worker and shown on the dashboard. */
export interface SnapshotJobData {
  cluster: string;
  /** The debounce window's id (its start as an ISO time), or `manual-<time>` / `schedule`. */
  window: string;
  /** Triggers counted per source when the job was added or last merged. */
  causes: Partial<Record<TriggerSource, number>>;
  /** A few sample resources. */
  samples: string[];
  /** The source of the window's first trigger, when known. */
  source?: TriggerSource;
  /**
   * Which job of the window this is: 0 for the window's job, 1+ for follow-ups made by triggers
   * that arrived after an earlier job of the same window had started. Absent for manual and
   * scheduled jobs, which have no window ledger.
   */
  generation?: number;
}

/** What a finished snapshot job returns; shown on the dashboard. */
export type SnapshotJobResult = PublishedJobResult | FoldedJobResult;

export interface PublishedJobResult {
  id: string;
  key: string;
  revision: number;
  storedSize: number;
  foldedInto?: never;
}

/** A window job whose changes another job's snapshot took over (the snapshots were slower than the window). */
export interface FoldedJobResult {
  foldedInto: string;
  id?: never;
}
