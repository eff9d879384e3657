/** `etcd-autobackup list`: the published snapshots of the cluster, newest first. */
import type { Command } from 'commander';
import { formatBytes } from '../../core/duration.js';
import { listSnapshots } from '../../worker/catalog.js';
import { listLegacy, type LegacyObject } from '../../worker/legacy.js';
import { readDrillRecord, type DrillRecord } from '../../worker/drill.js';
import type { Manifest } from '../../worker/manifest.js';
import { mapLimit } from '../../worker/map-limit.js';
import { openStore } from '../../worker/stores/open.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';
import { formatTable } from '../table.js';
import { describeDeltaLog, readDeltaCoverage } from './delta-coverage.js';

export function registerList(program: Command, context: CliContext): void {
  withConfigOptions(
    program
      .command('list')
      .alias('ls')
      .description('list the snapshots of the cluster in the store, newest first')
      .option('--json', 'print the manifests as a JSON array')
      .option(
        '--include-legacy',
        "also list the original chart's objects (<YYYY-MM-DD>/etcd-backup-<time>.db, no manifest); with --json the output becomes {snapshots, legacy}",
      )
      .option(
        '--include-deltas',
        'with --json, the output becomes {snapshots, deltas} (and legacy with --include-legacy): the delta log coverage beside the snapshots',
      ),
  ).action(async (opts: { json?: boolean; includeLegacy?: boolean; includeDeltas?: boolean }, cmd: Command) => {
    const { config, log } = setup(cmd);
    const store = await openStore(config);
    try {
      const snapshots = await listSnapshots(store, config.cluster, {
        onInvalid: (key, problem) => log.warn({ key }, `skipping manifest ${key}: ${problem}`),
      });
      const drills = await mapLimit(snapshots, 8, (m) => readDrillRecord(store, config.cluster, m.id));
      const legacy = opts.includeLegacy ? await listLegacy(store) : undefined;
      if (opts.json) {
        const listed = snapshots.map((m, i) => ({ ...m, lastDrill: drills[i] ?? null }));
        // A plain array unless asked for more: scripts read `list --json` as the snapshots.
        if (!legacy && !opts.includeDeltas) {
          context.print(JSON.stringify(listed, null, 2));
          return;
        }
        const out: Record<string, unknown> = { snapshots: listed };
        if (opts.includeDeltas) {
          const coverage = await readDeltaCoverage(store, config.cluster, snapshots, log);
          if ('error' in coverage) throw new Error(`the delta log cannot be read: ${coverage.error}`);
          out.deltas = coverage;
        }
        if (legacy) out.legacy = legacy.map((o) => ({ ...o, legacy: true }));
        context.print(JSON.stringify(out, null, 2));
        return;
      }
      if (snapshots.length === 0) {
        process.stderr.write(`no snapshots of cluster "${config.cluster}" in ${store.location}\n`);
      } else {
        context.print(table(snapshots, drills));
      }
      if (legacy) context.print(legacyTable(legacy, store.location));
      const deltas = describeDeltaLog(await readDeltaCoverage(store, config.cluster, snapshots, log));
      if (deltas) context.print(`\n${deltas}`);
    } finally {
      await store.close();
    }
  });
}

function table(snapshots: readonly Manifest[], drills: readonly (DrillRecord | undefined)[]): string {
  const rows = [
    ['ID', 'CREATED', 'REVISION', 'DB SIZE', 'STORED', 'COMPRESSION', 'LAST DRILL', 'CAUSE'],
    ...snapshots.map((m, i) => [
      m.id,
      m.createdAt.replace(/\.\d+Z$/, 'Z'),
      String(m.etcd.revision),
      formatBytes(m.dbSize),
      formatBytes(m.storedSize),
      m.compression,
      describeDrillShort(drills[i]),
      describeCause(m.cause),
    ]),
  ];
  return formatTable(rows);
}

/** Marked apart from our snapshots: these have no manifest, so less is known and checked about them. */
function legacyTable(objects: readonly LegacyObject[], location: string): string {
  if (objects.length === 0)
    return `\nLEGACY: no objects of the original chart (<YYYY-MM-DD>/etcd-backup-<time>.db) in ${location}`;
  const rows = [
    ['LEGACY OBJECT (original chart, no manifest)', 'CREATED', 'STORED'],
    ...objects.map((o) => [o.key, o.createdAt.replace(/\.\d+Z$/, 'Z'), formatBytes(o.storedSize)]),
  ];
  return [
    '',
    formatTable(rows),
    'verify or restore one by its key: etcd-autobackup verify <key>; etcd-autobackup restore <key> --data-dir DIR',
  ].join('\n');
}

function describeDrillShort(record: DrillRecord | undefined): string {
  if (!record) return '-';
  return `${record.ok ? 'passed' : 'FAILED'} ${record.at.replace(/\.\d+Z$/, 'Z')}`;
}

function describeCause(cause: Manifest['cause']): string {
  const counts = Object.entries(cause.counts ?? {}).map(([source, n]) => `${source}:${n}`);
  return counts.length > 0 ? `${cause.source} (${counts.join(', ')})` : cause.source;
}
