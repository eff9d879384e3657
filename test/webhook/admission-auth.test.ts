/**
 * POST /admission authenticates the apiserver when admissionAuth is set (AdmissionConfiguration
 * kubeconfig: client certificate or bearer token), over real TLS on loopback; off by default.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { createCa, issueCert, type Pem } from '../../certs/pki.js';
import { configSchema, type ConfigInput } from '../../core/config/index.js';
import { listen, type Listening } from '../../core/http/listen.js';
import { createMetrics } from '../../core/metrics.js';
import { createWebhookApp } from '../../webhook/app.js';
import { fixture, RecordingRecorder } from './harness.js';
import { postJsonTls, type TlsAnswer } from '../support/https-post.js';
import { tempDir } from '../support/tmp.js';

const TOKEN = 'a7b8c9d0e1f2a3b4c5f3b1c0a2d4e5f6';
const EVENTS = fixture('audit-eventlist-mixed.json');
const ADMISSION = fixture('admission-review-update.json');

let dir: { path: string; remove: () => Promise<void> };
let serverCa: Pem;
let serving: Pem;
let auditCa: Pem;
let admissionCa: Pem;

function post(url: string, path: string, body: unknown, opts: { cert?: Pem; token?: string } = {}): Promise<TlsAnswer> {
  return postJsonTls(url, path, body, { ca: serverCa.cert, ...opts });
}

async function serve(config: ConfigInput, clientCa?: string): Promise<Listening> {
  const app = createWebhookApp({
    config: configSchema.parse(config),
    recorder: new RecordingRecorder(),
    log: pino({ level: 'silent' }),
    metrics: createMetrics(),
    ready: () => true,
  });
  return listen(app, '127.0.0.1:0', { tls: { ...serving, clientCa } });
}

before(async () => {
  dir = await tempDir('admission-auth');
  serverCa = createCa('webhook CA');
  serving = issueCert(serverCa, { commonName: 'webhook', ipAddresses: ['127.0.0.1'] });
  auditCa = createCa('audit client CA');
  admissionCa = createCa('admission client CA');
  await writeFile(join(dir.path, 'audit-ca.crt'), auditCa.cert);
  await writeFile(join(dir.path, 'admission-ca.crt'), admissionCa.cert);
  await writeFile(join(dir.path, 'token'), `${TOKEN}\n`);
});
after(async () => dir.remove());

test('without admissionAuth, /admission is open; with a token file it needs that bearer token', async () => {
  const open = await serve({});
  try {
    assert.equal((await post(open.url, '/admission', ADMISSION)).status, 200);
  } finally {
    await open.close();
  }
  const http = await serve({ admissionAuth: { tokenFile: join(dir.path, 'token') } });
  try {
    const none = await post(http.url, '/admission', ADMISSION);
    assert.equal(none.status, 401);
    assert.match(none.body, /admission webhook authentication failed \(no bearer token\).*admissionAuth\.tokenFile/);
    assert.equal((await post(http.url, '/admission', ADMISSION, { token: 'wrong-token-0123456789' })).status, 401);
    assert.equal((await post(http.url, '/admission', ADMISSION, { token: TOKEN })).status, 200);
    assert.equal((await post(http.url, '/audit', EVENTS)).status, 200, '/audit stays as auditAuth says: open');
  } finally {
    await http.close();
  }
});

test('with different client CAs for audit and admission, each route accepts only certificates of its own CA', async () => {
  const auditClient = issueCert(auditCa, { commonName: 'apiserver-audit', usage: ['client'] });
  const admissionClient = issueCert(admissionCa, { commonName: 'apiserver-admission', usage: ['client'] });
  const http = await serve(
    {
      auditAuth: { clientCaFile: join(dir.path, 'audit-ca.crt') },
      admissionAuth: { clientCaFile: join(dir.path, 'admission-ca.crt') },
    },
    `${auditCa.cert}\n${admissionCa.cert}`,
  );
  try {
    assert.equal((await post(http.url, '/admission', ADMISSION, { cert: admissionClient })).status, 200);
    assert.equal((await post(http.url, '/audit', EVENTS, { cert: auditClient })).status, 200);
    const crossed = await post(http.url, '/admission', ADMISSION, { cert: auditClient });
    assert.equal(crossed.status, 401);
    assert.match(crossed.body, /not signed by admissionAuth\.clientCaFile/);
    const crossedAudit = await post(http.url, '/audit', EVENTS, { cert: admissionClient });
    assert.equal(crossedAudit.status, 401);
    assert.match(crossedAudit.body, /not signed by auditAuth\.clientCaFile/);
    assert.equal((await post(http.url, '/admission', ADMISSION)).status, 401);
  } finally {
    await http.close();
  }
});
