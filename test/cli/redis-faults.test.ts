import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../support/cli.js';
import { freePort, waitFor } from '../support/ports.js';
import { Processes } from '../support/processes.js';
import { startRedis } from '../support/redis.js';
import { tempDir } from '../support/tmp.js';

const PASSWORD = 'not-the-password-1234';

async function readyz(url: string): Promise<{ status: number; body: { status?: string; reason?: string } }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as { status?: string; reason?: string } };
}

function serveFlags(redisUrl: string, storeDir: string): string[] {
  return [
    '--cluster',
    'faults',
    '--redis-url',
    redisUrl,
    '--endpoints',
    'http://127.0.0.1:1',
    '--store',
    `file://${storeDir}`,
    '--max-interval',
    '0',
    '--shutdown-grace',
    '2s',
  ];
}

async function serveBindsAndStops(redisUrl: string, what: string, configYaml?: string): Promise<void> {
  const processes = new Processes();
  const dir = await tempDir('redis-faults');
  try {
    const flags = serveFlags(redisUrl, join(dir.path, 'store'));
    if (configYaml !== undefined) {
      await writeFile(join(dir.path, 'config.yaml'), configYaml);
      flags.push('--config', join(dir.path, 'config.yaml'));
    }
    // start() waits for the banner, printed once the port is bound.
    const serve = await processes.start('serve', flags, { timeoutMs: 60_000 });
    const r = await waitFor(`${what}: /readyz to answer`, () => readyz(serve.url).catch(() => undefined));
    assert.equal(r.status, 503, `${what}: not ready`);
    assert.equal(r.body.status, 'not ready');
    assert.match(r.body.reason ?? '', /Redis/);

    serve.signal('SIGTERM');
    // Generous: before the fix one SIGTERM was ignored for over a minute.
    const exit = await Promise.race([
      serve.exited,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 30_000).unref()),
    ]);
    assert.ok(exit, `${what}: one SIGTERM stops serve\n${processes.describe()}`);
    assert.ok(!serve.stderr().includes(PASSWORD), 'the password never reaches the log');
  } finally {
    await processes.killAll();
    await dir.remove();
  }
}

test('serve with a wrong Redis password: binds at once, /readyz 503, one SIGTERM stops it', async () => {
  const redis = await startRedis();
  try {
    await redis.command('CONFIG', 'SET', 'requirepass', 'the-real-one');
    await serveBindsAndStops(`redis://:${PASSWORD}@127.0.0.1:${redis.port}`, 'wrong password');
  } finally {
    await redis.stop();
  }
});

test('serve with Redis unreachable: binds at once, /readyz 503, one SIGTERM stops it', async () => {
  await serveBindsAndStops(`redis://127.0.0.1:${await freePort()}`, 'Redis down');
});

test('serve with drill.schedule and Redis unreachable: one SIGTERM stops it (the drill scheduler set-up gives up)', async () => {
  await serveBindsAndStops(
    `redis://127.0.0.1:${await freePort()}`,
    'Redis down, drills scheduled',
    'drill:\n  schedule: 1h\n',
  );
});

test('snapshot --enqueue with Redis down or refusing the password gives up after queue.enqueueTimeout, naming Redis', async () => {
  const redis = await startRedis();
  try {
    await redis.command('CONFIG', 'SET', 'requirepass', 'the-real-one');
    const down = await freePort();
    for (const [url, where] of [
      [`redis://127.0.0.1:${down}`, `redis://127.0.0.1:${down}`],
      [`redis://:${PASSWORD}@127.0.0.1:${redis.port}`, `redis://127.0.0.1:${redis.port}`],
    ] as const) {
      const r = await runCli(
        ['snapshot', '--enqueue', '--cluster', 'faults', '--redis-url', url, '--enqueue-timeout', '2s'],
        { timeoutMs: 60_000 },
      );
      assert.notEqual(r.code, 0, r.stderr);
      assert.notEqual(r.code, null, 'exited by itself, not killed');
      assert.ok(r.stderr.includes(`Redis at ${where} did not take the job within 2s`), r.stderr);
      assert.ok(!r.stderr.includes(PASSWORD), r.stderr);
    }
  } finally {
    await redis.stop();
  }
});
