/**
 * `drill-prepare` and `drill-check`: the steps of a drill Job's pod that run in this image
 * (worker/drill-job.ts builds the pod, worker/drill-pod.ts does the work). Not for operators:
 * `etcd-autobackup drill` is the command to run by hand.
 */
import type { Command } from 'commander';
import { messageOf } from '../../core/errors.js';
import { findSnapshot } from '../../worker/catalog.js';
import { loadIdentities } from '../../worker/crypto/age.js';
import { loadKeyRing } from '../../worker/crypto/keys.js';
import { checkDrill, prepareDrill } from '../../worker/drill-pod.js';
import { openStore } from '../../worker/stores/open.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';

export function registerDrillPrepare(program: Command, context: CliContext): void {
  withConfigOptions(
    program
      .command('drill-prepare')
      .description('(drill Job pod, first step) download and verify a snapshot into the scratch volume')
      .argument('<id>', 'snapshot id')
      .requiredOption('--scratch <dir>', 'the pod scratch volume')
      .requiredOption('--job <name>', 'the drill Job name, recorded')
      .requiredOption('--run <label>', 'the run label the worker reads the record back by')
      .requiredOption('--etcd-image <image>', 'the etcd image of the pod, recorded'),
  ).action(async (id: string, opts: { scratch: string; job: string; run: string; etcdImage: string }, cmd: Command) => {
    const { config, log } = setup(cmd);
    const store = await openStore(config);
    try {
      const manifest = await findSnapshot(store, config.cluster, id);
      let keys: Awaited<ReturnType<typeof loadKeyRing>> | undefined;
      let identities: Awaited<ReturnType<typeof loadIdentities>>;
      let keysFailed: string | undefined;
      try {
        keys = await loadKeyRing(config.encryption);
        identities = await loadIdentities(config.encryption.identityFiles);
      } catch (err) {
        keysFailed = messageOf(err);
      }
      const record = await prepareDrill({
        store,
        manifest,
        scratch: opts.scratch,
        run: opts.run,
        job: opts.job,
        etcdImage: opts.etcdImage,
        freeSpaceMargin: config.drill.freeSpaceMargin,
        log,
        ...(keys ? { keys } : {}),
        identities,
        ...(keysFailed !== undefined ? { keysFailed } : {}),
      });
      if (!record.ok) throw new Error(`drill of ${id} failed: ${record.failure ?? '?'}`);
      context.print(`snapshot ${id} downloaded and verified into ${opts.scratch}`);
    } finally {
      await store.close();
    }
  });
}

export function registerDrillCheck(program: Command, context: CliContext): void {
  withConfigOptions(
    program
      .command('drill-check')
      .description('(drill Job pod, last step) check the restored etcd against the manifest and store the drill record')
      .requiredOption('--scratch <dir>', 'the pod scratch volume')
      .requiredOption('--endpoint <url>', 'the etcd sidecar')
      .requiredOption('--etcd-version <version>', "the etcd image's version, recorded")
      .option('--start-timeout-ms <ms>', 'how long the sidecar may take to answer', '60000'),
  ).action(
    async (opts: { scratch: string; endpoint: string; etcdVersion: string; startTimeoutMs: string }, cmd: Command) => {
      const { config, log } = setup(cmd);
      const store = await openStore(config);
      try {
        const record = await checkDrill({
          store,
          scratch: opts.scratch,
          endpoint: opts.endpoint,
          etcdVersion: opts.etcdVersion,
          startTimeoutMs: Number(opts.startTimeoutMs),
          log,
        });
        context.print(JSON.stringify(record, null, 2));
        if (!record.ok) throw new Error(`drill of ${record.id} failed: ${record.failure ?? '?'}`);
      } finally {
        await store.close();
      }
    },
  );
}
