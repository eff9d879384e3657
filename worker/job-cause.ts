/**
 * How a snapshot Job learns why it runs: the worker puts the queue job's cause in an env var of the
 * Job's container, and `etcd-autobackup snapshot` records it in the manifest instead of `manual`.
 */
import { causeSchema, type Cause } from '../core/cause.js';
import { ConfigError } from '../core/errors.js';

export const SNAPSHOT_CAUSE_ENV = 'ETCD_AUTOBACKUP_SNAPSHOT_CAUSE';

export function causeFromEnv(env: NodeJS.ProcessEnv): Cause | undefined {
  const raw = env[SNAPSHOT_CAUSE_ENV];
  if (raw === undefined || raw === '') return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new ConfigError(
      `${SNAPSHOT_CAUSE_ENV} is not JSON; it is set by the worker's Job executor and should not be set by hand`,
    );
  }
  const parsed = causeSchema.safeParse(json);
  if (!parsed.success)
    throw new ConfigError(
      `${SNAPSHOT_CAUSE_ENV} is not a snapshot cause: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
    );
  return parsed.data;
}
