/**
 * `etcd-autobackup restore <id|latest> --data-dir DIR`: a verified snapshot into a new etcd data dir;
 * with --to-revision, --to-time, --before or --before-revision instead of an id, a point in time
 * replayed from the delta log (point-in-time.ts).
 */
import type { Command } from 'commander';
import { ConfigError } from '../../core/errors.js';
import { progressReporter } from '../../core/progress.js';
import { findSnapshot } from '../../worker/catalog.js';
import { restoreNextSteps, restoreSnapshot, type MemberSettings } from '../../worker/restore.js';
import { loadIdentities } from '../../worker/crypto/age.js';
import { loadKeyRing } from '../../worker/crypto/keys.js';
import { findLegacy, isLegacyKey, restoreLegacy } from '../../worker/legacy.js';
import { openStore } from '../../worker/stores/open.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';
import { describeReplay, restoreToPoint, targetSpec, type PointInTimeFlags } from './point-in-time.js';
import { describeLegacyReport, describeReport } from './verify.js';

interface RestoreFlags extends PointInTimeFlags {
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
        '[id]',
        'snapshot id from "etcd-autobackup list", "latest", or the key of an original chart\'s object from "list --include-legacy"; leave out with a point-in-time flag',
      )
      .requiredOption('--data-dir <dir>', 'data directory to create; must not exist or be empty')
      .option('--name <name>', 'member name of the restored member (etcdctl default: default)')
      .option('--initial-cluster <list>', 'name=peerURL,... of every member of the restored cluster')
      .option('--initial-cluster-token <token>', 'cluster token of the restored cluster')
      .option('--initial-advertise-peer-urls <urls>', "this member's peer URLs")
      .option('--to-revision <revision>', 'point in time: the state at this etcd revision (delta log)')
      .option('--to-time <time>', 'point in time: the state as of this instant, ISO 8601 with zone (delta log)')
      .option(
        '--before <object>',
        'point in time: just before the newest update or delete of this object, e.g. namespaces/prod, apps/deployments/shop/web, or an etcd key',
      )
      .option('--before-revision <revision>', 'point in time: the state just before this revision')
      .option(
        '--scratch-dir <dir>',
        'point in time: where the replay etcd keeps its data (default: beside --data-dir; tmpfs is fastest)',
      ),
  ).action(async (id: string | undefined, opts: RestoreFlags, cmd: Command) => {
    const { config, log } = setup(cmd);
    const spec = targetSpec(opts);
    if (spec && id !== undefined) {
      throw new ConfigError(`give a snapshot id or a point-in-time flag, not both ("${id}" and a --to/--before flag)`);
    }
    if (!spec && id === undefined) {
      throw new ConfigError(
        'give a snapshot id (or "latest"), or one of --to-revision, --to-time, --before, --before-revision',
      );
    }
    const member: MemberSettings = {
      ...(opts.name ? { name: opts.name } : {}),
      ...(opts.initialCluster ? { initialCluster: opts.initialCluster } : {}),
      ...(opts.initialClusterToken ? { initialClusterToken: opts.initialClusterToken } : {}),
      ...(opts.initialAdvertisePeerUrls ? { initialAdvertisePeerUrls: opts.initialAdvertisePeerUrls } : {}),
    };
    const store = await openStore(config);
    try {
      if (spec) {
        const { report, reason } = await restoreToPoint({
          config,
          store,
          log,
          spec,
          dataDir: opts.dataDir,
          member,
          scratchDir: opts.scratchDir,
          signal: context.signal,
        });
        context.print([describeReplay(report, reason), '', ...restoreNextSteps(report)].join('\n'));
        return;
      }
      if (id !== undefined && isLegacyKey(id)) {
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
      const manifest = await findSnapshot(store, config.cluster, id ?? 'latest');
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
