import type { ChangeRecorder } from '../core/queue/contract.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import type { Filters } from './filters.js';

/** What the audit and admission routes share: both filter, count and record changes. */
export interface TriggerRouteOptions {
  filters: Filters;
  recorder: ChangeRecorder;
  metrics: Metrics;
  log: Logger;
  /** Clock for changes without a timestamp of their own. */
  now: () => Date;
}
