/** `etcd-autobackup prune [--dry-run] [--json]`: apply retention to the cluster's snapshots now. */
import type { Command } from 'commander';
import { prune, pruneSettings, type PruneReport } from '../../worker/prune.js';
import { openStore } from '../../worker/stores/open.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';

export function registerPrune(program: Command, context: CliContext): void {
  withConfigOptions(
    program
      .command('prune')
      .description(
        'delete the snapshots the retention counts no longer keep, and stale orphans (the worker also does this after each snapshot)',
      )
      .option('--dry-run', 'print what would be deleted and why; delete nothing')
      .option('--json', 'print the report as JSON'),
  ).action(async (opts: { dryRun?: boolean; json?: boolean }, cmd: Command) => {
    const { config, log } = setup(cmd);
    const store = await openStore(config);
    try {
      const report = await prune({ ...pruneSettings(config), store, log, dryRun: opts.dryRun ?? false });
      context.print(opts.json ? JSON.stringify(report, null, 2) : describePrune(report));
    } finally {
      await store.close();
    }
  });
}

export function describePrune(report: PruneReport): string {
  const where = `cluster "${report.cluster}" in ${report.location}`;
  if (!report.enabled) return `retention is off (retention.enabled: false): nothing deleted in ${where}`;
  const verb = report.dryRun ? 'would delete' : 'deleted';
  const lines = [
    `${where}: ${report.kept.length + report.deleted.length} snapshot(s), keeping ${report.kept.length}, ${verb} ${report.deleted.length}` +
      `${report.orphans.length > 0 ? ` and ${report.orphans.length} orphan(s)` : ''}${report.dryRun ? ' (dry run: nothing deleted)' : ''}`,
  ];
  const rows: string[][] = [
    ...report.kept.map((k) => ['keep', k.id, k.reasons.join(', ')]),
    ...report.deleted.map((d) => [report.dryRun ? 'delete' : 'deleted', d.id, d.reason]),
    ...report.orphans.map((o) => [report.dryRun ? 'delete' : 'deleted', o.key, `orphan: ${o.reason}`]),
    ...report.skipped.map((s) => ['leave', s.key, s.reason]),
  ];
  const width = rows.reduce((w, r) => Math.max(w, (r[0] as string).length), 0);
  const idWidth = rows.reduce((w, r) => Math.max(w, (r[1] as string).length), 0);
  for (const [action, name, why] of rows)
    lines.push(`  ${(action as string).padEnd(width)}  ${(name as string).padEnd(idWidth)}  ${why as string}`);
  const segments = report.deltaSegmentsDeleted;
  if (segments.length > 0 || report.deltaSegmentsKept > 0) {
    const range =
      segments.length > 0
        ? ` (revisions ${segments[0]?.firstRevision}..${segments[segments.length - 1]?.lastRevision})`
        : '';
    lines.push(
      `  delta log: keeping ${report.deltaSegmentsKept} segment(s), ${verb} ${segments.length}${range} that no kept snapshot needs`,
    );
  }
  if (report.foreign > 0) lines.push(`  ${report.foreign} object(s) not written by etcd-autobackup left untouched`);
  return lines.join('\n');
}
