/** `etcd-autobackup restore <id|latest> --data-dir DIR`: a verified snapshot into a new etcd data dir. */
import type { Command } from 'commander';
import { progressReporter } from '../../core/progress.js';
import { findSnapshot } from '../../worker/catalog.js';
import { restoreNextSteps, restoreSnapshot, type MemberSettings } from '../../worker/restore.js';
import { loadIdentities } from '../../worker/crypto/age.js';
import { loadKeyRing } from '../../worker/crypto/keys.js';
import { findLegacy, isLegacyKey, restoreLegacy } from '../../worker/legacy.js';
import { openStore } from '../../worker/stores/open.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';
import { describeLegacyReport, describeReport } from './verify.js';

interface RestoreFlags {
  dataDir: string;
  name?: string;
  initialCluster?: string;
  initialClusterToken?: string;
  initialAdvertisePeerUrls?: string;
}

export function registerRestore(program: Command, context: CliContext): void {
  withConfigOptions(
    program
      .command('restore')
      .description('verify a snapshot and restore it into a new etcd data directory (all or nothing)')
      .argument(
        '<id>',
        'snapshot id from "etcd-autobackup list", "latest", or the key of an original chart\'s object from "list --include-legacy"',
      )
      .requiredOption('--data-dir <dir>', 'data directory to create; must not exist or be empty')
      .option('--name <name>', 'member name of the restored member (etcdctl default: default)')
      .option('--initial-cluster <list>', 'name=peerURL,... of every member of the restored cluster')
      .option('--initial-cluster-token <token>', 'cluster token of the restored cluster')
      .option('--initial-advertise-peer-urls <urls>', "this member's peer URLs"),
  ).action(async (id: string, opts: RestoreFlags, cmd: Command) => {
    const { config, log } = setup(cmd);
    const store = await openStore(config);
    try {
      const member: MemberSettings = {
        ...(opts.name ? { name: opts.name } : {}),
        ...(opts.initialCluster ? { initialCluster: opts.initialCluster } : {}),
        ...(opts.initialClusterToken ? { initialClusterToken: opts.initialClusterToken } : {}),
        ...(opts.initialAdvertisePeerUrls ? { initialAdvertisePeerUrls: opts.initialAdvertisePeerUrls } : {}),
      };
      if (isLegacyKey(id)) {
        log.info({ key: id, dataDir: opts.dataDir }, "restoring the original chart's object");
        const report = await restoreLegacy({
          store,
          object: await findLegacy(store, id),
          dataDir: opts.dataDir,
          etcdctl: config.etcd.etcdctl,
          member,
          signal: context.signal,
          onProgress: progressReporter('download', log),
        });
        context.print(
          [
            describeLegacyReport(report),
            `restored revision ${report.status.revision} into ${report.dataDir}`,
            '',
            ...restoreNextSteps(report),
          ].join('\n'),
        );
        return;
      }
      const manifest = await findSnapshot(store, config.cluster, id);
      log.info({ id: manifest.id, key: manifest.key, dataDir: opts.dataDir }, 'restoring snapshot');
      const report = await restoreSnapshot({
        store,
        manifest,
        dataDir: opts.dataDir,
        etcdctl: config.etcd.etcdctl,
        member,
        signal: context.signal,
        onProgress: progressReporter('download', log),
        keys: await loadKeyRing(config.encryption),
        identities: await loadIdentities(config.encryption.identityFiles),
      });
      context.print(
        [
          describeReport(report),
          `restored revision ${report.status.revision} into ${report.dataDir}`,
          '',
          ...restoreNextSteps(report),
        ].join('\n'),
      );
    } finally {
      await store.close();
    }
  });
}
