/**
 * The audit endpoint authenticates the apiserver over real TLS on loopback: client certificates
 * from certs/pki.ts checked against auditAuth.clientCaFile, or a bearer token; everything else 401.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { createCa, issueCert, type Pem } from '../../certs/pki.js';
import { configSchema } from '../../core/config/index.js';
import { listen, type Listening } from '../../core/http/listen.js';
import { createMetrics } from '../../core/metrics.js';
import { createWebhookApp } from '../../webhook/app.js';
import { fixture, RecordingRecorder } from './harness.js';
import { postJsonTls, type TlsAnswer } from '../support/https-post.js';
import { tempDir } from '../support/tmp.js';

const TOKEN = 'f3b1c0a2d4e5f6a7b8c9d0e1f2a3b4c5';
const EVENTS = fixture('audit-eventlist-mixed.json');
const ADMISSION = fixture('admission-review-update.json');

let dir: { path: string; remove: () => Promise<void> };
let serverCa: Pem;
let serving: Pem;
let clientCa: Pem;
let goodClient: Pem;

function post(url: string, path: string, body: unknown, opts: { cert?: Pem; token?: string } = {}): Promise<TlsAnswer> {
  return postJsonTls(url, path, body, { ca: serverCa.cert, ...opts });
}

async function serve(auditAuth: {
  clientCaFile?: string;
  tokenFile?: string;
}): Promise<{ http: Listening; recorder: RecordingRecorder }> {
  const recorder = new RecordingRecorder();
  const app = createWebhookApp({
    config: configSchema.parse({ auditAuth }),
    recorder,
    log: pino({ level: 'silent' }),
    metrics: createMetrics(),
    ready: () => true,
  });
  const http = await listen(app, '127.0.0.1:0', {
    tls: { ...serving, clientCa: auditAuth.clientCaFile ? await readFile(auditAuth.clientCaFile, 'utf8') : undefined },
  });
  return { http, recorder };
}

before(async () => {
  dir = await tempDir('audit-auth');
  serverCa = createCa('webhook CA');
  serving = issueCert(serverCa, { commonName: 'webhook', ipAddresses: ['127.0.0.1'] });
  clientCa = createCa('audit client CA');
  goodClient = issueCert(clientCa, { commonName: 'kube-apiserver-audit', usage: ['client'] });
  await writeFile(join(dir.path, 'client-ca.crt'), clientCa.cert);
  await writeFile(join(dir.path, 'token'), `${TOKEN}\n`);
});
after(async () => {
  await dir.remove();
});

describe('client certificate auth', () => {
  let http: Listening;
  let recorder: RecordingRecorder;
  before(async () => {
    ({ http, recorder } = await serve({ clientCaFile: join(dir.path, 'client-ca.crt') }));
  });
  after(async () => {
    await http.close();
  });

  test('a client certificate signed by the CA is accepted and the batch recorded', async () => {
    assert.match(http.url, /^https:/);
    const res = await post(http.url, '/audit', EVENTS, { cert: goodClient });
    assert.equal(res.status, 200, res.body);
    assert.ok(recorder.changes.length > 0, 'writes in the fixture were recorded');
  });

  test('no certificate, a foreign CA, an expired or a server-only certificate: 401, nothing recorded', async () => {
    const before = recorder.changes.length;
    const other = createCa('someone else');
    const cases: [string, Pem | undefined, RegExp][] = [
      ['none', undefined, /no client certificate/],
      ['foreign', issueCert(other, { commonName: 'x', usage: ['client'] }), /not signed by auditAuth.clientCaFile/],
      [
        'expired',
        issueCert(clientCa, { commonName: 'x', usage: ['client'], days: 1, now: new Date('2020-01-01T00:00:00Z') }),
        /expired/,
      ],
      ['server-only', issueCert(clientCa, { commonName: 'x', usage: ['server'] }), /not for client authentication/],
    ];
    for (const [name, cert, why] of cases) {
      const res = await post(http.url, '/audit', EVENTS, cert ? { cert } : {});
      assert.equal(res.status, 401, `${name}: ${res.body}`);
      assert.match(res.body, why, name);
    }
    assert.equal(recorder.changes.length, before);
  });

  test('admission stays open to the TLS handshake without a client certificate', async () => {
    const res = await post(http.url, '/admission', ADMISSION);
    assert.equal(res.status, 200, res.body);
  });
});

describe('bearer token auth', () => {
  let http: Listening;
  before(async () => {
    ({ http } = await serve({ tokenFile: join(dir.path, 'token') }));
  });
  after(async () => {
    await http.close();
  });

  test('the right token passes; a wrong or missing one gets 401 with a Bearer challenge and no echo', async () => {
    assert.equal((await post(http.url, '/audit', EVENTS, { token: TOKEN })).status, 200);
    const wrong = await post(http.url, '/audit', EVENTS, { token: 'not-the-token-at-all-000000' });
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.headers['www-authenticate']), /^Bearer/);
    assert.doesNotMatch(wrong.body, /not-the-token/);
    assert.doesNotMatch(wrong.body, new RegExp(TOKEN));
    assert.equal((await post(http.url, '/audit', EVENTS)).status, 401);
    // A client certificate is no substitute when only a token is configured.
    assert.equal((await post(http.url, '/audit', EVENTS, { cert: goodClient })).status, 401);
  });
});

describe('both configured', () => {
  test('either credential is enough', async () => {
    const { http } = await serve({ clientCaFile: join(dir.path, 'client-ca.crt'), tokenFile: join(dir.path, 'token') });
    try {
      assert.equal((await post(http.url, '/audit', EVENTS, { cert: goodClient })).status, 200);
      assert.equal((await post(http.url, '/audit', EVENTS, { token: TOKEN })).status, 200);
      assert.equal((await post(http.url, '/audit', EVENTS)).status, 401);
    } finally {
      await http.close();
    }
  });

  test('a missing CA file is a configuration error naming the field', () => {
    assert.throws(
      () =>
        createWebhookApp({
          config: configSchema.parse({ auditAuth: { clientCaFile: join(dir.path, 'nope.crt') } }),
          recorder: new RecordingRecorder(),
          log: pino({ level: 'silent' }),
          metrics: createMetrics(),
          ready: () => true,
        }),
      /auditAuth\.clientCaFile/,
    );
  });
});
