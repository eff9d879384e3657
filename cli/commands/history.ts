/**
 * `etcd-autobackup history <object|key-prefix>`: every change the delta log holds for one object
 * (or every key under a prefix), oldest first: how an operator finds the point to restore to.
 */
import type { Command } from 'commander';
import { formatBytes } from '../../core/duration.js';
import { loadIdentities } from '../../worker/crypto/age.js';
import { loadKeyRing } from '../../worker/crypto/keys.js';
import { keyHistory, readLogState, type KeyHistoryEntry } from '../../worker/delta/point-in-time.js';
import { resourceKey } from '../../worker/delta/resource-key.js';
import { changeKind } from '../../worker/delta/target.js';
import { openStore } from '../../worker/stores/open.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';
import { formatTable } from '../table.js';

export function registerHistory(program: Command, context: CliContext): void {
  withConfigOptions(
    program
      .command('history')
      .description('list the changes the delta log holds for an object or a key prefix (to find a restore point)')
      .argument(
        '<object>',
        'an object, e.g. namespaces/prod or apps/deployments/shop/web, or an etcd key prefix starting with / (every key under it)',
      )
      .option('--json', 'print the changes as a JSON array'),
  ).action(async (object: string, opts: { json?: boolean }, cmd: Command) => {
    const { config, log } = setup(cmd);
    const prefix = object.startsWith('/');
    const key = resourceKey(object);
    const store = await openStore(config);
    try {
      const read = {
        keys: await loadKeyRing(config.encryption),
        identities: await loadIdentities(config.encryption.identityFiles),
        signal: context.signal,
        onInvalid: (k: string, problem: string) => log.warn({ key: k }, `skipping ${k}: ${problem}`),
      };
      const state = await readLogState(store, config.cluster, read);
      const changes = await keyHistory(store, state, key, { ...read, prefix });
      if (opts.json) {
        context.print(
          JSON.stringify(
            changes.map((c) => ({ ...c, kind: changeKind(c), receivedAt: new Date(c.receivedAt).toISOString() })),
            null,
            2,
          ),
        );
        return;
      }
      if (changes.length === 0) {
        const span = state.runs.length
          ? `revisions ${state.runs.map((r) => `${r.startRevision}..${r.endRevision}`).join(', ')}`
          : 'nothing yet';
        process.stderr.write(
          `the delta log of cluster "${config.cluster}" holds no change of ${key}${prefix ? ' or any key under it' : ''} (it covers ${span})\n`,
        );
        return;
      }
      context.print(table(changes, prefix));
      const last = [...changes].reverse().find((c) => changeKind(c) !== 'create');
      if (last && !prefix) {
        context.print(
          `\nto restore the state just before the ${changeKind(last)} at revision ${last.revision}: etcd-autobackup restore --before ${object} --data-dir DIR` +
            `\n(any other row: --before-revision REVISION)`,
        );
      }
    } finally {
      await store.close();
    }
  });
}

function table(changes: readonly KeyHistoryEntry[], withKey: boolean): string {
  const rows = [
    ['REVISION', 'RECEIVED', 'TYPE', 'VERSION', 'SIZE', ...(withKey ? ['KEY'] : [])],
    ...changes.map((c) => [
      String(c.revision),
      new Date(c.receivedAt).toISOString(),
      changeKind(c),
      String(c.version),
      c.type === 'delete' ? '-' : formatBytes(c.size),
      ...(withKey ? [c.key] : []),
    ]),
  ];
  return formatTable(rows);
}
