import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig, redactConfig, SETTINGS, envName } from '../../core/config/index.js';
import { referenceMarkdown } from '../../core/config/reference.js';
import { ConfigError } from '../../core/errors.js';
import { parseDuration } from '../../core/duration.js';
import { tempDir } from '../support/tmp.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

test('defaults are sane for a local run', () => {
  const c = loadConfig({ env: {} });
  assert.equal(c.cluster, 'default');
  assert.deepEqual(c.etcd.endpoints, ['http://127.0.0.1:2379']);
  assert.equal(c.store.url, 'file://./backups');
  assert.equal(c.snapshot.compression, 'zstd');
  assert.equal(c.queue.debounceWindow, 5 * 60_000);
  assert.equal(c.queue.maxInterval, 24 * 3_600_000);
});

test('precedence: file < env < flags, with the same mapping for each', async () => {
  const dir = await tempDir('cfg');
  try {
    const file = join(dir.path, 'config.yaml');
    await writeFile(
      file,
      'cluster: from-file\netcd:\n  endpoints: [http://10.0.0.1:2379]\nqueue:\n  debounceWindow: 10m\nstore:\n  s3:\n    region: eu-west-1\n',
    );
    const fileOnly = loadConfig({ file, env: {} });
    assert.equal(fileOnly.cluster, 'from-file');
    assert.equal(fileOnly.queue.debounceWindow, 600_000);
    assert.equal(fileOnly.store.s3.region, 'eu-west-1');

    const env = {
      ETCD_AUTOBACKUP_CLUSTER: 'from-env',
      ETCD_AUTOBACKUP_ENDPOINTS: 'http://a:2379, http://b:2379',
      ETCD_AUTOBACKUP_S3_FORCE_PATH_STYLE: 'true',
    };
    const withEnv = loadConfig({ file, env });
    assert.equal(withEnv.cluster, 'from-env');
    assert.deepEqual(withEnv.etcd.endpoints, ['http://a:2379', 'http://b:2379']);
    assert.equal(withEnv.store.s3.forcePathStyle, true);
    assert.equal(withEnv.store.s3.region, 'eu-west-1', 'file values survive where env says nothing');

    const withFlags = loadConfig({ file, env, flags: { cluster: 'from-flag', 'debounce-window': '2s' } });
    assert.equal(withFlags.cluster, 'from-flag');
    assert.equal(withFlags.queue.debounceWindow, 2000);

    // The config file can also come from the environment.
    assert.equal(loadConfig({ env: { ETCD_AUTOBACKUP_CONFIG: file } }).cluster, 'from-file');
  } finally {
    await dir.remove();
  }
});

test('every wrong field is reported at once, naming the field and where to set it', () => {
  const err = configError(() =>
    loadConfig({
      env: { ETCD_AUTOBACKUP_COMPRESSION_LEVEL: 'high' },
      flags: { endpoints: 'localhost:2379', cluster: 'Prod_1', 'debounce-window': 'soon' },
    }),
  );
  assert.match(err.message, /etcd\.endpoints\.0: expected an etcd client URL.*--endpoints/);
  assert.match(err.message, /cluster: expected a lowercase DNS-style name/);
  assert.match(err.message, /queue\.debounceWindow: expected a duration.*"soon"/);
  assert.match(err.message, /snapshot\.compressionLevel: env ETCD_AUTOBACKUP_COMPRESSION_LEVEL expects a whole number/);
  assert.equal(err.problems.length, 4);
});

test('a cert without a key, and an unknown key in the file, are explained', async () => {
  assert.match(
    configError(() => loadConfig({ env: {}, flags: { cert: '/x.crt' } })).message,
    /cert and key go together/,
  );
  const dir = await tempDir('cfg');
  try {
    const file = join(dir.path, 'c.yaml');
    await writeFile(file, 'etcd:\n  endpoint: http://x:2379\n');
    assert.match(configError(() => loadConfig({ file, env: {} })).message, /etcd: unknown key\(s\) "endpoint"/);
    await writeFile(file, 'etcd: [1, 2\n');
    assert.match(configError(() => loadConfig({ file, env: {} })).message, /not valid YAML/);
    assert.match(
      configError(() => loadConfig({ file: join(dir.path, 'missing.yaml'), env: {} })).message,
      /cannot read config file/,
    );
  } finally {
    await dir.remove();
  }
});

test('drill.replayLog: off by default, on from the file, refused with drill.executor job', async () => {
  assert.equal(loadConfig({ env: {} }).drill.replayLog, false);
  const dir = await tempDir('cfg');
  try {
    const file = join(dir.path, 'c.yaml');
    await writeFile(file, 'drill:\n  replayLog: true\n');
    assert.equal(loadConfig({ file, env: {} }).drill.replayLog, true);
    const env = { ETCD_AUTOBACKUP_DRILL_EXECUTOR: 'job', ETCD_AUTOBACKUP_EXECUTOR_IMAGE: 'registry.example/eab:1' };
    const err = configError(() => loadConfig({ file, env }));
    assert.match(
      err.message,
      /drill\.replayLog: drill\.replayLog runs only with drill\.executor: local .*set drill\.executor to local or drill\.replayLog to false/,
    );
    assert.equal(err.problems.length, 1);
    // Without replayLog the same Job executor config loads.
    await writeFile(file, 'drill:\n  replayLog: false\n');
    assert.equal(loadConfig({ file, env }).drill.executor, 'job');
  } finally {
    await dir.remove();
  }
});

test('secrets are neither echoed in errors nor shown by redactConfig', () => {
  const err = configError(() =>
    loadConfig({ env: {}, flags: { 's3-secret-access-key': true, 'redis-url': 'mysql://user:hunter2@db' } }),
  );
  assert.ok(!err.message.includes('hunter2'));
  const c = loadConfig({
    env: { ETCD_AUTOBACKUP_S3_SECRET_ACCESS_KEY: 'hunter2', ETCD_AUTOBACKUP_REDIS_PASSWORD: 'hunter3' },
  });
  const shown = JSON.stringify(redactConfig(c));
  assert.ok(!shown.includes('hunter2') && !shown.includes('hunter3'));
  assert.equal(c.store.s3.secretAccessKey, 'hunter2', 'the real config keeps the value');
});

test('every setting maps onto a real schema path, with a unique flag and env var', () => {
  const defaults = loadConfig({ env: {} }) as unknown as Record<string, unknown>;
  const flags = new Set<string>();
  for (const s of SETTINGS) {
    assert.ok(!flags.has(s.flag), `duplicate flag ${s.flag}`);
    flags.add(s.flag);
    const parent = s.path
      .split('.')
      .slice(0, -1)
      .reduce<unknown>((node, k) => (node as Record<string, unknown>)[k], defaults);
    assert.equal(typeof parent, 'object', `${s.path} has no parent object in the schema`);
    assert.match(envName(s.flag), /^ETCD_AUTOBACKUP_[A-Z0-9_]+$/);
  }
});

test('durations', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('0'), 0);
  assert.equal(parseDuration('5'), undefined);
  assert.equal(parseDuration('5 m'), undefined);
});

test('docs/configuration.md is generated from the schema and up to date', async () => {
  const onDisk = await readFile(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  assert.equal(
    onDisk,
    referenceMarkdown(),
    'run `npm run docs:config` (or `npm run generate`) and commit docs/configuration.md',
  );
});
