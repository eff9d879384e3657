/** `etcd-autobackup verify <id|latest>`: read a snapshot back and prove it restores. */
import type { Command } from 'commander';
import { formatBytes } from '../../core/duration.js';
import { progressReporter } from '../../core/progress.js';
import { findSnapshot } from '../../worker/catalog.js';
import { loadKeyRing } from '../../worker/crypto/keys.js';
import { openStore } from '../../worker/stores/open.js';
import { verifySnapshot, type VerifyReport } from '../../worker/verify.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';

export function registerVerify(program: Command, context: CliContext): void {
  withConfigOptions(
    program
      .command('verify')
      .description(
        "download a snapshot, check its SHA-256 against etcd's trailer and the manifest, and open it with etcdctl",
      )
      .argument('<id>', 'snapshot id from "etcd-autobackup list", or "latest"')
      .option(
        '--temp-dir <dir>',
        'where the uncompressed copy is written while checking (default: the system temp dir)',
      )
      .option('--json', 'print the report as JSON'),
  ).action(async (id: string, opts: { json?: boolean; tempDir?: string }, cmd: Command) => {
    const { config, log } = setup(cmd);
    const store = await openStore(config);
    try {
      const manifest = await findSnapshot(store, config.cluster, id);
      log.info({ id: manifest.id, key: manifest.key }, 'verifying snapshot');
      const report = await verifySnapshot({
        store,
        manifest,
        etcdctl: config.etcd.etcdctl,
        signal: context.signal,
        onProgress: progressReporter('download', log),
        keys: await loadKeyRing(config.encryption),
        ...(opts.tempDir ? { tempDir: opts.tempDir } : {}),
      });
      context.print(opts.json ? JSON.stringify(reportJson(report), null, 2) : describeReport(report));
    } finally {
      await store.close();
    }
  });
}

export function describeReport(report: VerifyReport): string {
  const { manifest, status } = report;
  return [
    `snapshot ${manifest.id}: OK`,
    `  sha256       ${report.sha256} (matches etcd's trailer and the manifest)`,
    `  size         ${formatBytes(report.dbSize)} database, ${formatBytes(manifest.storedSize)} stored (${manifest.compression}${manifest.encryption ? `, encrypted with key ${manifest.encryption.keyId}` : ''})`,
    `  etcdctl      hash ${status.hash}, revision ${status.revision}, ${status.totalKey} keys, total size ${formatBytes(status.totalSize)}`,
  ].join('\n');
}

function reportJson(report: VerifyReport): Record<string, unknown> {
  return {
    ok: true,
    id: report.manifest.id,
    key: report.manifest.key,
    sha256: report.sha256,
    dbSize: report.dbSize,
    snapshotSize: report.snapshotSize,
    status: report.status,
  };
}
