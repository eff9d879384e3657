/**
 * The worker listens where it is told (the chart passes `$(POD_IP):9471`, which on the host
 * network is the node's address, not every address of the node) and /metrics can require a
 * bearer token (metricsAuth.tokenFile): real processes, real HTTP.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from '../support/ports.js';
import { Processes } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

const TOKEN = 'metrics-token-0123456789abcdef';

async function flags(dir: string): Promise<string[]> {
  const tokenFile = join(dir, 'metrics-token');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  return [
    '--cluster',
    'listen',
    // Redis is not needed for this: the port is bound at once and /readyz says 503.
    '--redis-url',
    `redis://127.0.0.1:${await freePort()}`,
    '--endpoints',
    'http://127.0.0.1:1',
    '--store',
    `file://${join(dir, 'store')}`,
    '--max-interval',
    '0',
    '--shutdown-grace',
    '1s',
    '--metrics-token-file',
    tokenFile,
  ];
}

/** Whether a TCP connection to host:port is refused (nothing listens there). */
function refused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

async function checkMetricsAuth(url: string, what: string): Promise<void> {
  const open = await fetch(`${url}/metrics`);
  assert.equal(open.status, 401, `${what}: /metrics without a token`);
  assert.match(open.headers.get('www-authenticate') ?? '', /^Bearer /);
  const body = await open.text();
  assert.doesNotMatch(body, /etcd_autobackup_/, `${what}: a 401 shows no metrics`);
  assert.match(body, /metricsAuth\.tokenFile/, `${what}: the 401 says what to send`);
  const wrong = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer not-the-token-at-all' } });
  assert.equal(wrong.status, 401, `${what}: a wrong token`);
  const right = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(right.status, 200, `${what}: the token`);
  assert.match(await right.text(), /etcd_autobackup_/);
  // Probes carry no token: they stay open.
  assert.equal((await fetch(`${url}/healthz`)).status, 200, `${what}: /healthz needs no token`);
}

test('worker: listens on the configured address only, /metrics needs the bearer token, probes do not', async () => {
  const processes = new Processes();
  const dir = await tempDir('listen');
  try {
    // 127.0.0.2 stands for the pod IP: another address of the same host must not answer.
    const worker = await processes.start('worker', await flags(dir.path), { listenHost: '127.0.0.2' });
    const port = Number(new URL(worker.url).port);
    assert.ok(await refused('127.0.0.1', port), 'nothing answers on 127.0.0.1, another address of the host');
    await checkMetricsAuth(worker.url, 'worker');
  } finally {
    await processes.killAll();
    await dir.remove();
  }
});

test('serve: the webhook /metrics needs the token too; an IPv6 pod IP without brackets is accepted', async () => {
  const processes = new Processes();
  const dir = await tempDir('listen');
  try {
    const serve = await processes.start('serve', await flags(dir.path), { listenHost: '::1' });
    assert.equal(new URL(serve.url).hostname, '[::1]');
    assert.ok(await refused('127.0.0.1', Number(new URL(serve.url).port)));
    await checkMetricsAuth(serve.url, 'serve');
  } finally {
    await processes.killAll();
    await dir.remove();
  }
});
