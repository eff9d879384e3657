/** HTTPS serving with hot-reloaded certificates: set directly (managed) and from renewed files. */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { X509Certificate } from 'node:crypto';
import { pino } from 'pino';
import { startServingTls } from '../../certs/serving.js';
import { createCa, issueCert, type Pem } from '../../certs/pki.js';
import { configSchema } from '../../core/config/index.js';
import { listen, watchCertFiles } from '../../core/http/listen.js';
import { waitFor } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

let ca: Pem;
let dir: { path: string; remove: () => Promise<void> };
const log = pino({ level: 'silent' });

/** The serial number of the certificate a fresh connection is served. */
function servedSerial(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/healthz`, { ca: ca.cert, agent: false }, (res) => {
      const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
      res.resume();
      res.on('end', () => resolve(cert.serialNumber));
    });
    req.on('error', reject);
    req.end();
  });
}

function serialOf(pem: Pem): string {
  return new X509Certificate(pem.cert).serialNumber;
}

before(async () => {
  ca = createCa('serving test CA');
  dir = await tempDir('serving');
});
after(async () => {
  await dir.remove();
});

test('setCertificate serves new connections with the renewed certificate', async () => {
  const first = issueCert(ca, { commonName: 'a', ipAddresses: ['127.0.0.1'] });
  const second = issueCert(ca, { commonName: 'b', ipAddresses: ['127.0.0.1'] });
  const http = await listen((_req, res) => res.end('ok'), '127.0.0.1:0', { tls: first });
  try {
    assert.match(http.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(await servedSerial(http.url), serialOf(first));
    http.setCertificate(second);
    assert.equal(await servedSerial(http.url), serialOf(second));
    assert.throws(() => http.setCertificate({ cert: first.cert, key: second.key }), /do not form a pair/);
    assert.equal(await servedSerial(http.url), serialOf(second), 'a bad pair leaves the served certificate alone');
  } finally {
    await http.close();
  }
});

test('certificate files are served; a renewed cert waits for its key, then the pair is picked up', async () => {
  const certFile = join(dir.path, 'tls.crt');
  const keyFile = join(dir.path, 'tls.key');
  const first = issueCert(ca, { commonName: 'f1', ipAddresses: ['127.0.0.1'] });
  await writeFile(certFile, first.cert);
  await writeFile(keyFile, first.key);
  const serving = await startServingTls(configSchema.parse({ webhook: { tls: { certFile, keyFile } } }), log);
  assert.ok(serving);
  assert.equal(serving.tls.clientCa, undefined);
  const http = await listen((_req, res) => res.end('ok'), '127.0.0.1:0', { tls: serving.tls });
  let halfPairSeen: (err: Error) => void = () => undefined;
  const halfPair = new Promise<Error>((resolve) => (halfPairSeen = resolve));
  const watcher = watchCertFiles(certFile, keyFile, {
    intervalMs: 50,
    initial: first,
    onChange: (pem) => http.setCertificate(pem),
    onError: (err) => halfPairSeen(err),
  });
  try {
    assert.equal(await servedSerial(http.url), serialOf(first));
    const renewed = issueCert(ca, { commonName: 'f2', ipAddresses: ['127.0.0.1'] });
    // Cert first, key later, as a Secret volume update may look to a poller: the half pair is skipped.
    await writeFile(certFile, renewed.cert);
    assert.match((await halfPair).message, /do not form a pair/);
    assert.equal(await servedSerial(http.url), serialOf(first), 'the half pair is not served');
    await writeFile(keyFile, renewed.key);
    await waitFor('the renewed certificate', async () =>
      (await servedSerial(http.url)) === serialOf(renewed) ? true : undefined,
    );
  } finally {
    watcher.stop();
    await serving.close();
    await http.close();
  }
});

test('plain HTTP when nothing is configured; a mismatched pair is refused at start', async () => {
  assert.equal(await startServingTls(configSchema.parse({}), log), undefined);
  const a = issueCert(ca, { commonName: 'a' });
  const b = issueCert(ca, { commonName: 'b' });
  await writeFile(join(dir.path, 'a.crt'), a.cert);
  await writeFile(join(dir.path, 'b.key'), b.key);
  await assert.rejects(
    () =>
      startServingTls(
        configSchema.parse({
          webhook: { tls: { certFile: join(dir.path, 'a.crt'), keyFile: join(dir.path, 'b.key') } },
        }),
        log,
      ),
    /do not form a pair/,
  );
});
