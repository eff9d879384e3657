import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { envName, SETTINGS } from '../../core/config/index.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli, type CliResult } from '../support/cli.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

let work: { path: string; remove: () => Promise<void> };
let store: string[];

before(async () => {
  work = await tempDir('cli-config');
  store = ['--store', `file://${join(work.path, 'store')}`];
});

after(async () => {
  await work?.remove();
});

function assertConfigError(r: CliResult, field: RegExp): void {
  assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
  assert.match(r.stderr, field);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  assert.equal(r.stdout, '');
}

async function configFile(name: string, text: string): Promise<string> {
  const file = join(work.path, name);
  await writeFile(file, text);
  return file;
}

test('a wrong flag value exits 2 naming the field and where to set it', async () => {
  const r = await runCli(['list', ...store, '--compression-level', '25']);
  assertConfigError(
    r,
    /snapshot\.compressionLevel: .*<=19 \(flag --compression-level, env ETCD_AUTOBACKUP_COMPRESSION_LEVEL\)/,
  );
  const notInt = await runCli(['list', ...store, '--s3-part-size-mib', 'big']);
  assertConfigError(notInt, /store\.s3\.partSizeMiB: flag --s3-part-size-mib expects a whole number \(got "big"\)/);
});

test('a wrong env value exits 2 naming the env var', async () => {
  const r = await runCli(['list', ...store], { env: { ETCD_AUTOBACKUP_COMPRESSION: 'lz4' } });
  assertConfigError(r, /snapshot\.compression: .*env ETCD_AUTOBACKUP_COMPRESSION/);
});

test('bool flags are switches with a --no- form and never swallow the next argument', async () => {
  for (const args of [['--prefer-leader'], ['--no-prefer-leader']]) {
    const r = await runCli(['list', ...store, ...args]);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  }
  // `latest` stays the positional argument: with an empty store, verify says there is nothing.
  const positional = await runCli(['verify', '--prefer-leader', 'latest', ...store]);
  assert.match(positional.stderr, /no snapshot|etcd-autobackup snapshot/i);
  assert.equal(positional.code, 1);
  const r = await runCli(['list', ...store, '--prefer-leader=maybe']);
  assert.equal(r.code, 2);
  // In the environment, bools are words.
  assertConfigError(
    await runCli(['list', ...store], { env: { ETCD_AUTOBACKUP_PREFER_LEADER: 'maybe' } }),
    /etcd\.preferLeader: env ETCD_AUTOBACKUP_PREFER_LEADER expects true or false \(got "maybe"\)/,
  );
});

test('a config file with a wrong value exits 2 naming the field and the file', async () => {
  const file = await configFile('wrong.yaml', 'cluster: prod\nsnapshot:\n  compression: lz4\n');
  const r = await runCli(['list', ...store, '--config', file]);
  assertConfigError(r, new RegExp(`invalid configuration \\(file ${file}\\)\\n  - snapshot\\.compression: `));

  const viaEnv = await runCli(['list', ...store], { env: { ETCD_AUTOBACKUP_CONFIG: file } });
  assertConfigError(viaEnv, /snapshot\.compression: /);

  const typo = await configFile('typo.yaml', 'snapshot:\n  compresion: gzip\n');
  assertConfigError(await runCli(['list', ...store, '--config', typo]), /snapshot: unknown key\(s\) "compresion"/);
});

test('a config file that is not YAML, or missing, exits 2 naming the file', async () => {
  const file = await configFile('broken.yaml', 'etcd:\n  endpoints: [http://127.0.0.1:2379\n');
  assertConfigError(
    await runCli(['list', ...store, '--config', file]),
    new RegExp(`config file ${file} is not valid YAML`),
  );
  const missing = join(work.path, 'absent.yaml');
  assertConfigError(
    await runCli(['list', ...store, '--config', missing]),
    new RegExp(`cannot read config file ${missing}`),
  );
});

test('wrong usage exits 2', async () => {
  const r = await runCli(['restore', 'latest', ...store]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /required option '--data-dir <dir>' not specified/);
  assert.equal((await runCli(['frobnicate'])).code, 2);
});

test('secrets given by flag or env never appear in the output, even on errors', async () => {
  const secrets = [
    'Flag-Secret-111',
    'Env-Secret-222',
    'Etcd-Pass-333',
    'Redis-Pass-444',
    'Typo-Secret-555',
    'Url-Secret-666',
  ];
  const closed = `http://127.0.0.1:${await freePort()}`;
  const runs = [
    // A failing snapshot with secrets set by flag and env: an ordinary error, exit 1.
    await runCli(
      [
        'snapshot',
        ...store,
        '--endpoints',
        closed,
        '--etcd-dial-timeout',
        '500ms',
        '--etcd-username',
        'root',
        '--etcd-password',
        secrets[2] as string,
        `--s3-secret-access-key=${secrets[0]}`,
      ],
      {
        env: {
          ETCD_AUTOBACKUP_S3_SESSION_TOKEN: secrets[1] as string,
          ETCD_AUTOBACKUP_REDIS_PASSWORD: secrets[3] as string,
        },
      },
    ),
    // Secrets beside a config error.
    await runCli(['list', ...store, '--etcd-password', secrets[2] as string, '--compression-level', '0']),
    // A secret that is itself the wrong value.
    await runCli(['list', ...store, '--redis-url', `nope://${secrets[5]}@host`]),
    // A mistyped secret flag, echoed by the argument parser.
    await runCli(['list', ...store, `--s3-secret-acces-key=${secrets[4]}`]),
  ];
  assert.deepEqual(
    runs.map((r) => r.code),
    [1, 2, 2, 2],
    runs.map((r) => r.stderr).join('\n'),
  );
  assert.match(runs[0]?.stderr ?? '', /^error: /m);
  assert.match(runs[2]?.stderr ?? '', /redis\.url: /);
  assert.match(runs[3]?.stderr ?? '', /unknown option '--s3-secret-acces-key=\[redacted\]'/);
  for (const r of runs) {
    for (const secret of secrets) {
      assert.ok(
        !r.stdout.includes(secret) && !r.stderr.includes(secret),
        `secret ${secret} leaked:\n${r.stdout}\n${r.stderr}`,
      );
    }
  }
});

test('--help lists every setting with its env var', async () => {
  const r = await runCli(['verify', '--help']);
  assert.equal(r.code, 0);
  // commander wraps to the terminal width: compare with the wrapping folded away.
  const help = r.stdout.replace(/\s+/g, ' ');
  assert.match(
    help,
    /--s3-secret-access-key <value> S3 secret access key \[env ETCD_AUTOBACKUP_S3_SECRET_ACCESS_KEY\]/,
  );
  assert.match(help, /--config <file> YAML config file \[env ETCD_AUTOBACKUP_CONFIG\]/);
  for (const setting of SETTINGS)
    assert.ok(help.includes(`[env ${envName(setting.flag)}]`), `--help lacks ${setting.flag}`);
});

test('config check prints the effective configuration with secrets redacted, and exits 2 naming a wrong field', async () => {
  const file = await configFile(
    'check.yaml',
    [
      'cluster: prod-eu-1',
      'store:',
      '  url: s3://backups/etcd',
      '  s3: { region: eu-west-1, accessKeyId: AKIACHECK, secretAccessKey: check-secret-value }',
      'queue: { debounceWindow: 5m }',
    ].join('\n'),
  );
  const ok = await runCli(['config', 'check', '--config', file], {
    env: { ETCD_AUTOBACKUP_DASHBOARD_PASSWORD: 'dash-check-secret', ETCD_AUTOBACKUP_DASHBOARD_USER: 'admin' },
  });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /cluster: prod-eu-1/);
  assert.match(ok.stdout, /url: s3:\/\/backups\/etcd/);
  assert.match(ok.stdout, /debounceWindow: 300000/);
  assert.match(ok.stdout, /secretAccessKey: "?\[redacted\]"?/);
  assert.match(ok.stdout, /password: "?\[redacted\]"?/);
  assert.doesNotMatch(ok.stdout + ok.stderr, /check-secret-value|dash-check-secret/);

  const json = await runCli(['config', 'check', '--config', file, '--json']);
  assert.equal(json.code, 0, json.stderr);
  assert.equal((JSON.parse(json.stdout) as { cluster: string }).cluster, 'prod-eu-1');

  const bad = await configFile('check-bad.yaml', 'etcd:\n  endpoints: [10.0.0.11:2379]\n');
  assertConfigError(
    await runCli(['config', 'check', '--config', bad]),
    /etcd\.endpoints\.0: expected an etcd client URL/,
  );
});

test('precedence through the real CLI: a flag beats its env var, which beats the config file, which beats the default', async () => {
  const file = await configFile(
    'precedence.yaml',
    ['cluster: from-file', 'queue: { debounceWindow: 7m }', 'snapshot: { timeout: 3m }', 'log: { level: warn }'].join(
      '\n',
    ),
  );
  const r = await runCli(['config', 'check', '--json', '--config', file, '--snapshot-timeout', '45s'], {
    env: { [envName('debounce-window')]: '2m', [envName('snapshot-timeout')]: '90s' },
  });
  assert.equal(r.code, 0, r.stderr);
  const effective = JSON.parse(r.stdout) as {
    cluster: string;
    queue: { debounceWindow: number };
    snapshot: { timeout: number };
    log: { level: string };
    redis: { prefix: string };
  };
  assert.equal(effective.snapshot.timeout, 45_000, 'flag over env and file');
  assert.equal(effective.queue.debounceWindow, 120_000, 'env over file');
  assert.equal(effective.cluster, 'from-file', 'file over default');
  assert.equal(effective.log.level, 'warn', 'file over default');
  const defaults = JSON.parse((await runCli(['config', 'check', '--json'])).stdout) as typeof effective;
  assert.equal(effective.redis.prefix, defaults.redis.prefix, 'unset everywhere: the default');
  assert.notEqual(defaults.cluster, 'from-file');
  assert.notEqual(defaults.snapshot.timeout, 45_000);
});
