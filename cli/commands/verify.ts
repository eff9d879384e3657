/** `etcd-autobackup verify <id|latest>`: read a snapshot back and prove it restores. */
import type { Command } from 'commander';
import { formatBytes } from '../../core/duration.js';
import { progressReporter } from '../../core/progress.js';
import { findSnapshot } from '../../worker/catalog.js';
import { loadIdentities } from '../../worker/crypto/age.js';
import { checkStoredBytes, isAge } from '../../worker/crypto/age-stored.js';
import { loadKeyRing } from '../../worker/crypto/keys.js';
import { findLegacy, isLegacyKey, verifyLegacy, type LegacyVerifyReport } from '../../worker/legacy.js';
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
      .argument(
        '<id>',
        'snapshot id from "etcd-autobackup list", "latest", or the key of an original chart\'s object from "list --include-legacy"',
      )
      .option(
        '--temp-dir <dir>',
        'where the uncompressed copy is written while checking (default: the system temp dir)',
      )
      .option('--json', 'print the report as JSON'),
  ).action(async (id: string, opts: { json?: boolean; tempDir?: string }, cmd: Command) => {
    const { config, log } = setup(cmd);
    const store = await openStore(config);
    try {
      if (isLegacyKey(id)) {
        log.info({ key: id }, "verifying the original chart's object");
        const report = await verifyLegacy({
          store,
          object: await findLegacy(store, id),
          etcdctl: config.etcd.etcdctl,
          signal: context.signal,
          onProgress: progressReporter('download', log),
          ...(opts.tempDir ? { tempDir: opts.tempDir } : {}),
        });
        context.print(opts.json ? JSON.stringify(legacyReportJson(report), null, 2) : describeLegacyReport(report));
        return;
      }
      const manifest = await findSnapshot(store, config.cluster, id);
      log.info({ id: manifest.id, key: manifest.key }, 'verifying snapshot');
      const identities = await loadIdentities(config.encryption.identityFiles);
      if (isAge(manifest) && !identities) {
        // The identity is meant to live offline: check what the stored bytes allow, and say so.
        const stored = await checkStoredBytes(store, manifest, context.signal);
        const recorded = manifest.storedSha256 !== undefined;
        context.print(
          opts.json
            ? JSON.stringify(
                {
                  ok: true,
                  contentChecked: false,
                  id: manifest.id,
                  key: manifest.key,
                  ...stored,
                  storedSha256Recorded: recorded,
                },
                null,
                2,
              )
            : [
                `snapshot ${manifest.id}: stored object OK, content NOT checked`,
                `  stored       ${formatBytes(stored.storedSize)}, sha256 ${stored.storedSha256} (${recorded ? 'size and sha256 match the manifest' : 'size matches the manifest, which records no sha256'})`,
                `  not checked  it is age-encrypted to ${manifest.age?.recipients.join(', ') ?? '?'} and no identity was given; run verify with --identity FILE (encryption.identityFiles) to decrypt, check the database's SHA-256 and open it with etcdctl`,
              ].join('\n'),
        );
        return;
      }
      const report = await verifySnapshot({
        store,
        manifest,
        etcdctl: config.etcd.etcdctl,
        signal: context.signal,
        onProgress: progressReporter('download', log),
        keys: await loadKeyRing(config.encryption),
        identities,
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
    `  size         ${formatBytes(report.dbSize)} database, ${formatBytes(manifest.storedSize)} stored (${manifest.compression}${manifest.encryption ? `, encrypted with key ${manifest.encryption.keyId}` : ''}${manifest.age ? ', age' : ''})`,
    `  etcdctl      hash ${status.hash}, revision ${status.revision}, ${status.totalKey} keys, total size ${formatBytes(status.totalSize)}`,
  ].join('\n');
}

/** What was and was not checked for an object without a manifest. */
export function describeLegacyReport(report: LegacyVerifyReport): string {
  const { object, status } = report;
  return [
    `legacy object ${object.key}: OK (original chart, no manifest)`,
    report.trailerChecked
      ? `  sha256       ${report.sha256} (matches etcd's trailer in the object)`
      : `  sha256       ${report.sha256} (NOT checked: the object has no etcd SHA-256 trailer)`,
    `  size         ${formatBytes(report.dbSize)} database; bbolt meta pages OK (page size ${report.bbolt.pageSize}, txid ${report.bbolt.txid})`,
    `  ${report.tool.name.padEnd(12)} hash ${status.hash}, revision ${status.revision}, ${status.totalKey} keys, total size ${formatBytes(status.totalSize)}`,
    '  not checked  which cluster or revision it should be: the original wrote no manifest',
  ].join('\n');
}

function legacyReportJson(report: LegacyVerifyReport): Record<string, unknown> {
  return {
    ok: true,
    legacy: true,
    contentChecked: true,
    key: report.object.key,
    createdAt: report.object.createdAt,
    sha256: report.sha256,
    trailerChecked: report.trailerChecked,
    dbSize: report.dbSize,
    bbolt: report.bbolt,
    status: report.status,
    tool: { name: report.tool.name, version: report.tool.version },
  };
}

function reportJson(report: VerifyReport): Record<string, unknown> {
  return {
    ok: true,
    contentChecked: true,
    id: report.manifest.id,
    key: report.manifest.key,
    sha256: report.sha256,
    dbSize: report.dbSize,
    snapshotSize: report.snapshotSize,
    status: report.status,
  };
}
