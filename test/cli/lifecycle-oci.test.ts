/** `etcd-autobackup lifecycle apply` on an oci:// store, as a process against the local OCI server. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, runCliOk } from '../support/cli.js';
import { makeApiKey, type TestApiKey } from '../support/oci-keys.js';
import { startOciServer, type OciServer } from '../support/oci-server.js';
import { tempDir } from '../support/tmp.js';

let server: OciServer;
let key: TestApiKey;
let dir: { path: string; remove: () => Promise<void> };

before(async () => {
  dir = await tempDir('lifecycle-oci');
  key = await makeApiKey(dir.path);
  server = await startOciServer({ namespace: 'ns1', buckets: ['backups'], keys: [key] });
});
after(async () => {
  await server?.stop();
  await dir?.remove();
});

const args = () => [
  '--store',
  'oci://ns1/backups/etcd',
  '--cluster',
  'prod',
  '--oci-region',
  'us-ashburn-1',
  '--oci-endpoint',
  server.endpoint,
  '--oci-tenancy',
  key.tenancy,
  '--oci-user',
  key.user,
  '--oci-fingerprint',
  key.fingerprint,
  '--oci-private-key-file',
  key.keyFile,
];

test('lifecycle apply on oci: a dry run writes nothing, apply writes our rules once, a second apply is a no-op', async () => {
  const off = await runCli(['lifecycle', 'apply', ...args()]);
  assert.equal(off.code, 2);
  assert.match(off.stderr, /lifecycle\.enabled is false/);

  const dry = await runCliOk(['lifecycle', 'apply', '--dry-run', '--lifecycle', ...args()]);
  assert.match(dry.stdout, /would write .* \(dry run: nothing changed\)/);
  assert.equal(server.lifecyclePolicy('backups'), undefined);

  const applied = await runCliOk(['lifecycle', 'apply', '--lifecycle', ...args()]);
  assert.match(applied.stdout, /: written/);
  assert.match(applied.stdout, /prefix +etcd\/prod\/snapshots\//);
  const rules = server.lifecyclePolicy('backups') ?? [];
  assert.deepEqual(rules.map((r) => r.action).sort(), ['ARCHIVE', 'DELETE']);

  const again = await runCliOk(['lifecycle', 'apply', '--lifecycle', '--json', ...args()]);
  assert.equal((JSON.parse(again.stdout) as { changed: boolean }).changed, false);
  assert.equal((server.lifecyclePolicy('backups') ?? []).length, 2);
});
