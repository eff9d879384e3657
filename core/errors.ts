/**
 * Errors a user can act on. Each names what went wrong in words an operator can fix,
 * never a secret value.
 */

/** A wrong or missing configuration value; `field` is its dotted path in the config schema. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    /** One line per wrong field, already phrased for a human. */
    readonly problems: string[] = [],
  ) {
    super(problems.length > 0 ? `${message}\n  - ${problems.join('\n  - ')}` : message);
  }
}

/**
 * Where a snapshot failed: lets alerts and the dashboard say which part of the path broke. The etcd
 * path: `connect` (no member answered, TLS), `stream` (etcd's stream broke or timed out), `compress`,
 * `encrypt`, `verify` (trailer mismatch), `upload` (the store), `publish` (the manifest). With
 * executor.mode job: `kubernetes` (an API call failed: RBAC, quota, apiserver down) and `job` (the Job
 * failed or vanished without its snapshot naming one of the stages above).
 */
export const SNAPSHOT_STAGES = [
  'connect',
  'stream',
  'compress',
  'encrypt',
  'verify',
  'upload',
  'publish',
  'kubernetes',
  'job',
] as const;
export type SnapshotStage = (typeof SNAPSHOT_STAGES)[number];

export class SnapshotError extends Error {
  override readonly name = 'SnapshotError';
  constructor(
    readonly stage: SnapshotStage,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${stage}: ${message}`, options);
  }
}

/** A stored snapshot that cannot be read back as it was written (checksum, format, missing object). */
export class IntegrityError extends Error {
  override readonly name = 'IntegrityError';
}

/** The message of any thrown value, for logs and CLI output. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
