/**
 * The bull-board dashboard as an operator sees it: a real `serve` process (webhook + worker) on
 * real Redis and etcd, one audit batch that becomes a completed snapshot job, then headless
 * Chromium asks for /queues without and with the dashboard credentials and reads the job's
 * trigger data off the rendered page. DASHBOARD_SCREENSHOT=<file.png> keeps the final screenshot,
 * to look at what an operator would see.
 */
import { skipOrFailInCi } from '../support/skip.js';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { createSnapshotQueue, QUEUE_NAME, type SnapshotQueue } from '../../core/queue/index.js';
import { configSchema } from '../../core/config/index.js';
import { launchBrowser, type TestBrowser } from '../support/browser.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { freePort, waitFor } from '../support/ports.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { tempDir } from '../support/tmp.js';
import { fixture } from './harness.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLUSTER = 'dash-test';
const USER = 'ops';

interface Serve {
  url: string;
  output: () => string;
  stop: () => Promise<void>;
}

async function startServe(args: string[]): Promise<Serve> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_AUTOBACKUP_')) env[k] = v;
  const port = await freePort();
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'cli', 'main.ts'), 'serve', '--listen', `127.0.0.1:${port}`, ...args],
    {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const keep = (d: Buffer) => (output = (output + d.toString()).slice(-8000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = child.exitCode === null ? once(child, 'exit') : Promise.resolve();
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(
      'serve to be ready',
      async () => {
        if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}: ${output}`);
        return (await fetch(`${url}/readyz`)).status === 200;
      },
      60_000,
      200,
    );
  } catch (err) {
    await stop();
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nserve output:\n${output}`, { cause: err });
  }
  return { url, output: () => output, stop };
}

test('the /queues dashboard in headless Chromium: 401 without credentials, the completed snapshot job and its causes with them', async (t) => {
  const launched = await launchBrowser();
  if (!launched.ok) {
    skipOrFailInCi(t, launched.reason);
    return;
  }
  const browser: TestBrowser = launched.browser;
  const password = randomBytes(12).toString('hex');
  const cleanups: (() => Promise<unknown>)[] = [() => browser.close()];
  let serve: Serve | undefined;
  try {
    const redis: RedisServer = await startRedis();
    cleanups.push(() => redis.stop());
    const etcd: EtcdServer = await startEtcd();
    cleanups.push(() => etcd.stop());
    const store = await tempDir('dashboard-store');
    cleanups.push(() => store.remove());
    const shots = await mkdtemp(join(tmpdir(), 'eab-dashboard-shot-'));
    cleanups.push(() => rm(shots, { recursive: true, force: true }));
    await etcd.client.put('/registry/configmaps/shop/web-config').value('v1');

    serve = await startServe([
      '--cluster',
      CLUSTER,
      '--endpoints',
      etcd.endpoint,
      '--store',
      `file://${store.path}`,
      '--redis-url',
      redis.url,
      '--debounce-window',
      '1s',
      '--max-interval',
      '0',
      '--compression',
      'none',
      '--dashboard-user',
      USER,
      '--dashboard-password',
      password,
      '--log-level',
      'warn',
    ]);
    cleanups.push(() => (serve as Serve).stop());

    const posted = await fetch(`${serve.url}/audit`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(fixture('audit-eventlist-mixed.json')),
    });
    assert.equal(posted.status, 200);
    assert.equal(((await posted.json()) as { triggers: number }).triggers, 3);

    // The job as the worker left it in Redis, to compare with what the page shows.
    const connection = new Redis({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null });
    connection.on('error', () => undefined);
    const queue: SnapshotQueue = createSnapshotQueue(configSchema.parse({ redis: { url: redis.url } }), connection);
    cleanups.push(async () => {
      await queue.close();
      connection.disconnect();
    });
    const job = await waitFor(
      'the snapshot job to complete',
      async () => {
        const failed = await queue.getJobs(['failed']);
        if (failed.length > 0) throw new Error(`snapshot job failed: ${failed[0]?.failedReason ?? '?'}`);
        return (await queue.getJobs(['completed']))[0];
      },
      45_000,
      250,
    ).catch((err: unknown) => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\nserve output:\n${serve?.output() ?? ''}`, {
        cause: err,
      });
    });
    assert.ok(job.id, 'the completed job has an id');
    assert.deepEqual(job.data.causes, { audit: 3 });
    assert.ok(job.data.samples.includes('pods default/nginx'), `samples: ${job.data.samples.join(', ')}`);

    // Without credentials: Chromium gets the 401 challenge, has nothing to answer it with, and
    // shows no page at all.
    const anonymous = await browser.newContext();
    const refusedPage = await anonymous.context.newPage();
    const challenge = refusedPage.waitForResponse((r) => new URL(r.url()).pathname === '/queues');
    await assert.rejects(refusedPage.goto(`${serve.url}/queues`), /ERR_INVALID_AUTH_CREDENTIALS/);
    const refused = await challenge;
    assert.equal(refused.status(), 401);
    assert.match(refused.headers()['www-authenticate'] ?? '', /^Basic realm="etcd-autobackup"/);
    // The dashboard's API behind it is refused the same way, with a message that says what to do.
    const api = await anonymous.context.request.get(`${serve.url}/queues/api/queues`);
    assert.equal(api.status(), 401);
    const apiBody = await api.text();
    assert.match(apiBody, /authentication required/);
    assert.doesNotMatch(apiBody, /snapshots|dash-test/);
    await anonymous.context.close();

    // A wrong password is challenged again; Chromium gives up and shows the refusal.
    const wrong = await browser.newContext({ httpCredentials: { username: USER, password: `${password}x` } });
    const wrongPage = await wrong.context.newPage();
    const wrongAnswer = await wrongPage.goto(`${serve.url}/queues`);
    assert.equal(wrongAnswer?.status(), 401);
    assert.match(await wrongPage.innerText('body'), /authentication required/);
    assert.doesNotMatch(await wrongPage.content(), /etcd snapshots of cluster/);
    await wrong.context.close();

    const { context, blocked } = await browser.newContext({
      httpCredentials: { username: USER, password },
      viewport: { width: 1280, height: 900 },
    });
    const page = await context.newPage();
    const overview = await page.goto(`${serve.url}/queues`);
    assert.equal(overview?.status(), 200);
    // The overview: the queue's card with its one job, counted as completed.
    await page.getByText('Loading...').waitFor({ state: 'detached', timeout: 20_000 });
    await page.getByText('1 Job').waitFor({ timeout: 20_000 });
    const overviewText = await page.innerText('body');
    assert.match(overviewText, /etcd-autobackup/, 'board title');
    assert.match(overviewText, new RegExp(`^${QUEUE_NAME}$`, 'm'), 'the queue');
    assert.match(overviewText, /COMPLETED\s+1\b/, 'one completed job');

    // To the queue, then its completed jobs, as a person would click.
    await page.locator('main').getByText(QUEUE_NAME, { exact: true }).first().click();
    await page.waitForURL(new RegExp(`/queues/queue/${QUEUE_NAME}`));
    await page
      .getByRole('link', { name: /completed/i })
      .first()
      .click();
    await page.waitForURL(/status=completed/);
    // The completed job's card, opened on its data: the causes and samples the recorder wrote.
    await page.getByText(job.id, { exact: true }).waitFor({ timeout: 20_000 });
    await page.getByText('"pods default/nginx"').first().waitFor({ timeout: 20_000 });
    const text = await page.innerText('main');
    assert.match(await page.innerText('body'), new RegExp(`etcd snapshots of cluster ${CLUSTER}`), 'queue description');
    assert.match(text, /causes:\s*\{\s*audit:\s*3\s*\}/, 'trigger counts by source');
    assert.match(text, /"pods default\/nginx"/, 'a sample resource');
    assert.match(text, /"apps\/deployments shop\/web"/, 'another sample resource');
    assert.match(text, new RegExp(`window:\\s*"${job.data.window}"`), 'the debounce window');
    assert.match(text, /source:\s*"audit"/, "the first trigger's source");

    const png = await page.screenshot({
      path: process.env.DASHBOARD_SCREENSHOT ?? join(shots, 'dashboard-completed.png'),
      fullPage: true,
    });
    assert.ok(png.subarray(0, 8).equals(Buffer.from('89504e470d0a1a0a', 'hex')), 'the screenshot is a PNG');
    // Only the web fonts the bull-board HTML links to may have been refused; the page works without them.
    assert.ok(
      blocked.every((u) => u.startsWith('https://fonts.')),
      `refused non-loopback requests: ${blocked.join(', ')}`,
    );
    await context.close();
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  }
});
