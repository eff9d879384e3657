/** `etcd-autobackup drill [<id>|latest]`: prove a snapshot restores into an etcd that starts (docs/drills.md). */
import type { Command } from 'commander';
import { findSnapshot, LATEST } from '../../worker/catalog.js';
import { saveDrillRecord, type DrillRecord } from '../../worker/drill.js';
import { drillRunnerFor } from '../../worker/drill-runner.js';
import { openStore } from '../../worker/stores/open.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';

export function registerDrill(program: Command, context: CliContext): void {
  withConfigOptions(
    program
      .command('drill')
      .description(
        'restore a snapshot into a throwaway etcd on loopback and compare its revision, HashKV and key counts with the manifest',
      )
      .addHelpText(
        'after',
        '\nWith --drill-executor job the drill runs as a Kubernetes Job in executor.namespace (docs/drills.md).',
      )
      .argument('[id]', 'snapshot id from "etcd-autobackup list", or "latest"', LATEST)
      .option('--json', 'print the drill record as JSON')
      .option(
        '--replay-log',
        "also replay the delta log from an older snapshot to this one's revision and compare HashKV and key counts (docs/drills.md)",
      ),
  ).action(async (id: string, opts: { json?: boolean; replayLog?: boolean }, cmd: Command) => {
    const { config, log } = setup(cmd);
    const store = await openStore(config);
    try {
      const manifest = await findSnapshot(store, config.cluster, id);
      // --drill-executor job runs it as a Kubernetes Job (docs/drills.md), from the kubeconfig's context.
      const record = await drillRunnerFor(config, store, opts.replayLog ? { replayLog: true } : {})(
        manifest,
        log,
        context.signal,
      );
      await saveDrillRecord(store, record);
      context.print(opts.json ? JSON.stringify(record, null, 2) : describeDrill(record));
      if (!record.ok) throw new Error(`drill of ${record.id} failed: ${record.failure ?? 'see the checks above'}`);
    } finally {
      await store.close();
    }
  });
}

export function describeDrill(record: DrillRecord): string {
  return [
    `snapshot ${record.id}: drill ${record.ok ? 'PASSED' : 'FAILED'} in ${(record.durationMs / 1000).toFixed(1)} s` +
      ` (etcd ${record.etcdVersion ?? '?'}, ${record.tool ? `${record.tool.name} ${record.tool.version}` : 'no tool'})`,
    ...record.checks.map((c) => `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(18)} ${c.detail}`),
  ].join('\n');
}
