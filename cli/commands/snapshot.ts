/** `etcd-autobackup snapshot`: one backup now, with the same path as the service's. */
import type { Command } from 'commander';
import { formatBytes, formatDuration } from '../../core/duration.js';
import { progressReporter } from '../../core/progress.js';
import { takeBackup } from '../../worker/backup.js';
import { openStore } from '../../worker/stores/open.js';
import { causeFromEnv } from '../../worker/job-cause.js';
import { enqueueSnapshot } from '../../core/queue/enqueue.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';

export function registerSnapshot(program: Command, context: CliContext): void {
  withConfigOptions(
    program
      .command('snapshot')
      .description('take a verified snapshot of etcd now and store it')
      .option('--json', 'print the manifest as JSON')
      .option('--enqueue', 'queue a snapshot for the running workers (via Redis) instead of taking it here'),
  ).action(async (opts: { json?: boolean; enqueue?: boolean }, cmd: Command) => {
    const { config, log } = setup(cmd);
    if (opts.enqueue) {
      const jobId = await enqueueSnapshot(config, { resource: 'cli' }, context.signal);
      context.print(
        opts.json
          ? JSON.stringify({ jobId })
          : `queued snapshot job ${jobId}; follow it on the dashboard or with \`etcd-autobackup list\``,
      );
      return;
    }
    const store = await openStore(config);
    try {
      const manifest = await takeBackup({
        config,
        store,
        log,
        // A snapshot Job (executor job) carries the queue job's cause.
        cause: causeFromEnv(process.env) ?? { source: 'manual' },
        signal: context.signal,
        onProgress: progressReporter('snapshot', log),
      });
      if (opts.json) {
        context.print(JSON.stringify(manifest, null, 2));
        return;
      }
      context.print(
        [
          `snapshot ${manifest.id}`,
          `  key          ${manifest.key} in ${store.location}`,
          `  revision     ${manifest.etcd.revision} (member ${manifest.etcd.endpoint}${manifest.etcd.isLeader ? ', leader' : ''})`,
          `  db size      ${formatBytes(manifest.dbSize)}`,
          `  stored size  ${formatBytes(manifest.storedSize)} (${manifest.compression}${manifest.encryption ? `, encrypted with key ${manifest.encryption.keyId}` : ''})`,
          `  sha256       ${manifest.sha256}`,
          `  took         ${formatDuration(manifest.durationMs)}`,
        ].join('\n'),
      );
    } finally {
      await store.close();
    }
  });
}
