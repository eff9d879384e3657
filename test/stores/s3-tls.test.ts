import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { openS3Store } from '../../worker/stores/s3.js';
import { startS3rver, type S3rverServer } from '../support/s3rver.js';
import { readAll, s3rverConfig } from '../support/store-helpers.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);

let dir: { path: string; remove: () => Promise<void> };
let server: S3rverServer;
let caFile: string;
let otherCaFile: string;

/** A self-signed certificate for 127.0.0.1, as a private MinIO would have. */
async function selfSigned(name: string): Promise<{ key: string; cert: string }> {
  const key = join(dir.path, `${name}.key`);
  const cert = join(dir.path, `${name}.crt`);
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  ]);
  return { key, cert };
}

before(async () => {
  dir = await tempDir('s3tls');
  const pair = await selfSigned('s3rver-test');
  caFile = pair.cert;
  otherCaFile = (await selfSigned('someone-else')).cert;
  server = await startS3rver({
    buckets: ['secure'],
    tls: { key: await readFile(pair.key, 'utf8'), cert: await readFile(pair.cert, 'utf8') },
  });
});

after(async () => {
  await server?.stop();
  await dir?.remove();
});

test('s3 TLS: caFile makes a self-signed endpoint trusted', async () => {
  assert.ok(server.endpoint.startsWith('https://'));
  const store = openS3Store('s3://secure/p', s3rverConfig(server.endpoint, { caFile }));
  try {
    await store.put('a.db', Readable.from([Buffer.from('over tls')]));
    assert.deepEqual(
      (await store.list('')).map((o) => o.key),
      ['a.db'],
    );
    assert.deepEqual(await readAll((await store.get('a.db')).body), Buffer.from('over tls'));
  } finally {
    await store.close();
  }
});

test('s3 TLS: without caFile, or with the wrong CA, the error says the certificate is not trusted', async () => {
  for (const extra of [{}, { caFile: otherCaFile }]) {
    const store = openS3Store('s3://secure/p', s3rverConfig(server.endpoint, extra));
    try {
      await assert.rejects(store.list(''), (err: Error) => {
        assert.match(err.message, /s3:\/\/secure\/p \(endpoint https:\/\/127\.0\.0\.1:\d+\)/);
        assert.match(
          err.message,
          /TLS: the endpoint's certificate is not trusted \([A-Z_]+: .*\); set store\.s3\.caFile/,
        );
        return true;
      });
      await assert.rejects(
        store.put('b.db', Readable.from([Buffer.from('x')])),
        /TLS: the endpoint's certificate is not trusted/,
      );
    } finally {
      await store.close();
    }
  }
});
