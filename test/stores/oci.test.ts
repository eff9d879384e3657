import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, sign } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import * as common from 'oci-common';
import { ObjectStorageClient } from 'oci-objectstorage';
import { loadConfig } from '../../core/config/index.js';
import { ociSchema } from '../../core/config/schema.js';
import { ConfigError } from '../../core/errors.js';
import { openOciStore, parseOciUrl } from '../../worker/stores/oci.js';
import { openStore } from '../../worker/stores/open.js';
import { NotFoundError } from '../../worker/stores/store.js';
import { fillEtcd, startEtcd } from '../support/etcd.js';
import { makeApiKey, ociConfigFor, type TestApiKey } from '../support/oci-keys.js';
import { startOciServer, type OciServer } from '../support/oci-server.js';
import { waitFor } from '../support/ports.js';
import {
  backupAndReadBack,
  failingStream,
  MIB,
  quiet,
  randomStream,
  readAll,
  sha256,
} from '../support/store-helpers.js';
import { tempDir } from '../support/tmp.js';

const NS = 'axtestns';
let server: OciServer;
let dir: { path: string; remove: () => Promise<void> };
let key: TestApiKey;
/** Small parts and quick retries, so that a few MiB cross part boundaries and faults resolve fast. */
const tuning = { partSize: 1 * MIB, pageSize: 2, retryDelayMs: 10 };

before(async () => {
  dir = await tempDir('oci-test');
  key = await makeApiKey(dir.path);
  server = await startOciServer({ namespace: NS, buckets: ['backups'], keys: [key] });
});

after(async () => {
  await server?.stop();
  await dir?.remove();
});

test('oci: put, list across pages, get and delete, all relative to the URL prefix and all signed', async () => {
  const store = openOciStore(
    `oci://${NS}/backups/team/etcd?region=us-ashburn-1`,
    ociConfigFor(key, server.endpoint, { region: undefined }),
    tuning,
  );
  const sibling = openOciStore(`oci://${NS}/backups/team/etcd-other`, ociConfigFor(key, server.endpoint), tuning);
  try {
    assert.equal(store.location, `oci://${NS}/backups/team/etcd?region=us-ashburn-1`);
    await sibling.put('a/1.db', Readable.from([Buffer.from('not mine')]));
    const small: Record<string, Buffer> = {
      'a/1.db': Buffer.from('one'),
      'a/2.db': Buffer.from('two!'),
      'a/3.db': Buffer.from(''),
      'b/1.db': Buffer.from('b one'),
      'c.manifest.json': Buffer.from(JSON.stringify({ hello: 'ü' })),
    };
    server.requests.length = 0;
    for (const [k, data] of Object.entries(small)) {
      assert.deepEqual(await store.put(k, Readable.from([data]), { contentType: 'application/octet-stream' }), {
        size: data.length,
      });
    }
    assert.deepEqual(
      server.requests.map((r) => r.op),
      Array(5).fill('PutObject'),
      'objects under one part take a single PutObject',
    );
    // 2.5 parts: two full parts and a short last one.
    const big = randomStream(2 * MIB + 512 * 1024 + 7);
    server.requests.length = 0;
    assert.deepEqual(await store.put('big/1.db', big.stream), { size: big.data.length });
    const ops = server.requests.map((r) => r.op);
    assert.equal(ops[0], 'CreateMultipartUpload');
    assert.equal(ops.filter((o) => o === 'UploadPart').length, 3);
    assert.equal(ops.at(-1), 'CommitMultipartUpload');
    assert.deepEqual(server.openUploads(), []);

    server.requests.length = 0;
    const all = await store.list('');
    assert.deepEqual(
      all.map((o) => [o.key, o.size]),
      [
        ['a/1.db', 3],
        ['a/2.db', 4],
        ['a/3.db', 0],
        ['b/1.db', 5],
        ['big/1.db', big.data.length],
        ['c.manifest.json', small['c.manifest.json']!.length],
      ],
    );
    assert.ok(all.every((o) => o.modified instanceof Date && !Number.isNaN(o.modified.getTime())));
    const lists = server.requests.filter((r) => r.op === 'ListObjects');
    assert.equal(lists.length, 3, 'six objects at two per page take three list calls');
    assert.deepEqual(
      lists.map((r) => r.query.get('limit')),
      ['2', '2', '2'],
    );
    assert.deepEqual(
      lists.map((r) => r.query.get('start')),
      [null, 'team/etcd/a/3.db', 'team/etcd/big/1.db'],
    );
    assert.deepEqual(
      (await store.list('a/')).map((o) => o.key),
      ['a/1.db', 'a/2.db', 'a/3.db'],
    );
    assert.deepEqual(await store.list('nothing-here/'), []);

    for (const [k, data] of Object.entries(small)) {
      const got = await store.get(k);
      assert.equal(got.size, data.length);
      assert.deepEqual(await readAll(got.body), data);
    }
    assert.equal(sha256(await readAll((await store.get('big/1.db')).body)), sha256(big.data));
    await assert.rejects(
      store.get('a/missing.db'),
      (err) => err instanceof NotFoundError && /a\/missing\.db/.test(err.message),
    );

    await store.delete('a/2.db');
    await store.delete('a/2.db');
    await store.delete('never/was.db');
    assert.deepEqual(
      (await store.list('a/')).map((o) => o.key),
      ['a/1.db', 'a/3.db'],
    );
    await assert.rejects(store.get('a/2.db'), NotFoundError);
    assert.deepEqual(
      (await sibling.list('')).map((o) => o.key),
      ['a/1.db'],
    );
    assert.ok(
      server.requests.length > 0 &&
        server.requests.every((r) => r.keyId === `${key.tenancy}/${key.user}/${key.fingerprint}`),
      'every request was signed with the key',
    );
  } finally {
    await store.close();
    await sibling.close();
  }
});

test('oci: the fake rejects unsigned requests and signatures made with another key, as OCI does', async () => {
  const unsigned = await fetch(`${server.endpoint}/n/${NS}/b/backups/o`);
  assert.equal(unsigned.status, 401);
  const body = (await unsigned.json()) as { code: string; message: string };
  assert.equal(body.code, 'NotAuthenticated');
  assert.equal(typeof body.message, 'string');

  // Claims key's keyId but signs with another private key: only a real verification notices.
  const other = await makeApiKey(dir.path, { tenancy: key.tenancy, user: key.user });
  const forged = new ObjectStorageClient(
    {
      authenticationDetailsProvider: new common.SimpleAuthenticationDetailsProvider(
        key.tenancy,
        key.user,
        key.fingerprint,
        other.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        null,
      ),
    },
    {
      circuitBreaker: new common.CircuitBreaker({ disableClientCircuitBreaker: true }),
      retryConfiguration: { terminationStrategy: new common.MaxAttemptsTerminationStrategy(1) },
    },
  );
  forged.endpoint = server.endpoint;
  await assert.rejects(
    forged.listObjects({ namespaceName: NS, bucketName: 'backups' }),
    (err: { statusCode?: number; serviceCode?: string }) => {
      assert.equal(err.statusCode, 401);
      assert.equal(err.serviceCode, 'NotAuthenticated');
      return true;
    },
  );
  assert.equal(server.requests.at(-1)?.status, 401);
});

test('oci: the fake holds JSON requests to the full signed header set, the body hash and the date', async () => {
  const path = `/n/${NS}/b/backups/u`;
  const host = new URL(server.endpoint).host;
  /** A draft-cavage signature made here, independently of the SDK's signer. */
  const send = (o: { body: string; hashed?: string; headers: string[]; date?: Date }) => {
    const hdrs: Record<string, string> = {
      host,
      'x-date': (o.date ?? new Date()).toUTCString(),
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(o.body)),
      'x-content-sha256': createHash('sha256')
        .update(o.hashed ?? o.body)
        .digest('base64'),
    };
    const signing = o.headers
      .map((h) => (h === '(request-target)' ? `(request-target): post ${path}` : `${h}: ${hdrs[h] ?? ''}`))
      .join('\n');
    const signature = sign('sha256', Buffer.from(signing), key.privateKey).toString('base64');
    const keyId = `${key.tenancy}/${key.user}/${key.fingerprint}`;
    hdrs.authorization = `Signature version="1",keyId="${keyId}",algorithm="rsa-sha256",headers="${o.headers.join(' ')}",signature="${signature}"`;
    return fetch(`${server.endpoint}${path}`, { method: 'POST', headers: hdrs, body: o.body });
  };
  const all = ['x-date', '(request-target)', 'host', 'content-type', 'content-length', 'x-content-sha256'];
  const body = JSON.stringify({ object: 'signed-by-hand' });
  const deny = async (r: Promise<Response>, why: RegExp) => {
    const res = await r;
    assert.equal(res.status, 401);
    const err = (await res.json()) as { code: string; message: string };
    assert.equal(err.code, 'NotAuthenticated');
    assert.match(err.message, why);
  };
  await deny(
    send({ body, headers: ['x-date', '(request-target)', 'host'] }),
    /not signed: content-length, content-type, x-content-sha256/,
  );
  await deny(send({ body, hashed: '{"object":"something else"}', headers: all }), /x-content-sha256 does not match/);
  await deny(send({ body, headers: all, date: new Date(Date.now() - 10 * 60_000) }), /5 minutes/);
  const ok = await send({ body, headers: all });
  assert.equal(ok.status, 200, await ok.clone().text());
  const upload = (await ok.json()) as { uploadId: string };
  assert.ok(server.openUploads().some((u) => u.object === 'signed-by-hand'));
  // Leave nothing open for the other tests.
  const store = openOciStore(`oci://${NS}/backups`, ociConfigFor(key, server.endpoint), tuning);
  await store.client.abortMultipartUpload({
    namespaceName: NS,
    bucketName: 'backups',
    objectName: 'signed-by-hand',
    uploadId: upload.uploadId,
  });
  await store.close();
  assert.deepEqual(server.openUploads(), []);
});

test('oci: a key OCI does not know fails with 401 and says what to check, never a secret', async () => {
  const passphrase = 'correct horse battery staple';
  const stranger = await makeApiKey(dir.path, { passphrase });
  const store = openOciStore(`oci://${NS}/backups/p`, ociConfigFor(stranger, server.endpoint, { passphrase }), {
    ...tuning,
    maxAttempts: 1,
  });
  try {
    for (const attempt of [
      () => store.list(''),
      () => store.put('x.db', Readable.from([Buffer.from('x')])),
      () => store.get('x.db'),
    ]) {
      await assert.rejects(attempt(), (err: Error) => {
        assert.match(err.message, new RegExp(`oci://${NS}/backups/p`));
        assert.match(err.message, /401 NotAuthenticated/);
        assert.match(err.message, /fingerprint/);
        assert.match(err.message, /tenancy/);
        assert.ok(!err.message.includes(passphrase));
        assert.ok(!err.message.includes('PRIVATE KEY'));
        return true;
      });
    }
    assert.deepEqual(
      server.objectNames('backups').filter((n) => n.startsWith('p/')),
      [],
    );
  } finally {
    await store.close();
  }
});

test('oci: a part that keeps failing aborts the multipart upload and leaves nothing; a transient one is retried', async () => {
  const store = openOciStore(`oci://${NS}/backups/faults`, ociConfigFor(key, server.endpoint), {
    ...tuning,
    maxAttempts: 2,
  });
  try {
    server.requests.length = 0;
    server.fault((r) =>
      r.op === 'UploadPart' && r.query.get('uploadPartNum') === '2'
        ? { status: 500, code: 'InternalServerError', message: 'disk on fire' }
        : undefined,
    );
    const input = randomStream(3 * MIB + 5);
    await assert.rejects(store.put('broken.db', input.stream), (err: Error) => {
      assert.match(
        err.message,
        /upload of "broken\.db" to oci:\/\/axtestns\/backups\/faults\?region=us-ashburn-1 .*part 2.*500 InternalServerError: disk on fire/,
      );
      assert.match(err.message, /the multipart upload was aborted, nothing was stored/);
      return true;
    });
    assert.ok(input.stream.destroyed, 'the input was destroyed');
    assert.equal(
      server.requests.filter((r) => r.op === 'UploadPart' && r.query.get('uploadPartNum') === '2').length,
      2,
      'one retry',
    );
    assert.ok(server.requests.some((r) => r.op === 'AbortMultipartUpload' && r.status === 204));
    assert.deepEqual(server.openUploads(), []);
    server.fault(undefined);
    assert.deepEqual(await store.list(''), []);

    let failures = 0;
    server.fault((r) =>
      r.op === 'UploadPart' && failures++ === 0 ? { status: 503, code: 'ServiceUnavailable' } : undefined,
    );
    const ok = randomStream(2 * MIB + 1);
    assert.deepEqual(await store.put('retried.db', ok.stream), { size: ok.data.length });
    assert.equal(sha256(await readAll((await store.get('retried.db')).body)), sha256(ok.data));
  } finally {
    server.fault(undefined);
    await store.close();
  }
});

test('oci: a commit whose answer was lost is retried and found committed; a 404 for an object not made of our parts fails', async () => {
  const store = openOciStore(`oci://${NS}/backups/lost-commit`, ociConfigFor(key, server.endpoint), tuning);
  try {
    server.requests.length = 0;
    let commits = 0;
    server.fault((r) =>
      r.op === 'CommitMultipartUpload' && commits++ === 0
        ? { lost: { status: 503, code: 'ServiceUnavailable' } }
        : undefined,
    );
    const input = randomStream(3 * MIB + 7);
    assert.deepEqual(await store.put('lost.db', input.stream), { size: input.data.length });
    const answers = server.requests.filter((r) => r.op === 'CommitMultipartUpload').map((r) => r.status);
    assert.deepEqual(answers, [503, 404], 'the SDK retried the commit and the upload was gone');
    assert.equal(sha256(await readAll((await store.get('lost.db')).body)), sha256(input.data));
    assert.deepEqual(server.openUploads(), []);

    // A 404 while an older object of another content holds the key: not ours, so the put fails.
    server.fault((r) => (r.op === 'CommitMultipartUpload' ? { status: 404, code: 'NoSuchUpload' } : undefined));
    await assert.rejects(store.put('lost.db', randomStream(2 * MIB + 3).stream), /404 NoSuchUpload/);
    await assert.rejects(store.put('never.db', randomStream(2 * MIB + 3).stream), /404 NoSuchUpload/);
    server.fault(undefined);
    assert.equal(
      sha256(await readAll((await store.get('lost.db')).body)),
      sha256(input.data),
      'the older object stays',
    );
    assert.deepEqual(
      (await store.list('')).map((o) => o.key),
      ['lost.db'],
    );
  } finally {
    server.fault(undefined);
    await store.close();
  }
});

test('oci: a server that stops answering fails the call instead of hanging it', async () => {
  const store = openOciStore(`oci://${NS}/backups/stuck`, ociConfigFor(key, server.endpoint), {
    ...tuning,
    maxAttempts: 1,
    idleTimeoutMs: 300,
  });
  server.fault((r) => (r.op === 'ListObjects' || r.op === 'UploadPart' ? { hang: true } : undefined));
  try {
    await assert.rejects(store.list(''), /listing "" in oci:\/\/axtestns\/backups\/stuck.*no answer.*idle/);
    await assert.rejects(store.put('stuck.db', randomStream(MIB + 1).stream), /idle.*the multipart upload was aborted/);
  } finally {
    server.fault(undefined);
    await store.close();
  }
  assert.deepEqual(server.openUploads(), []);
});

test('oci: an input that fails mid-upload aborts the upload; a failed commit leaves nothing either', async () => {
  const store = openOciStore(`oci://${NS}/backups/input`, ociConfigFor(key, server.endpoint), tuning);
  try {
    const stream = failingStream(2 * MIB + 100, new Error('etcd went away'));
    await assert.rejects(
      store.put('half.db', stream),
      /the data to upload failed: etcd went away; the multipart upload was aborted/,
    );
    assert.deepEqual(server.openUploads(), []);

    server.fault((r) =>
      r.op === 'CommitMultipartUpload' ? { status: 400, code: 'InvalidParameter', message: 'no' } : undefined,
    );
    await assert.rejects(
      store.put('uncommitted.db', randomStream(MIB + 1).stream),
      /400 InvalidParameter: no; the multipart upload was aborted/,
    );
    server.fault(undefined);
    assert.deepEqual(server.openUploads(), []);
    assert.deepEqual(await store.list(''), []);

    // A producer that stalls after one part, as a hung etcd would; the abort must not wait for it.
    const controller = new AbortController();
    const stalled = quiet(new PassThrough());
    stalled.write(randomStream(MIB + 10).data);
    server.requests.length = 0;
    const putting = store.put('aborted.db', stalled, { signal: controller.signal });
    await waitFor('the first part', () =>
      Promise.resolve(server.requests.some((r) => r.op === 'UploadPart' && r.status === 200) || undefined),
    );
    controller.abort(new Error('snapshot timed out'));
    await assert.rejects(putting, /stopped: aborted \(snapshot timed out\); the multipart upload was aborted/);
    assert.ok(stalled.destroyed);
    assert.deepEqual(server.openUploads(), []);
    assert.deepEqual(await store.list(''), []);
  } finally {
    server.fault(undefined);
    await store.close();
  }
});

test('oci: credentials from an OCI config file profile, with an encrypted key and inherited DEFAULT values', async () => {
  const passphrase = 'file-secret-123';
  const fileKey = await makeApiKey(dir.path, { passphrase, user: 'ocid1.user.oc1..aaaafileuser' });
  const fake = await startOciServer({ namespace: NS, buckets: ['cfg'], keys: [fileKey] });
  const configFile = join(dir.path, 'config');
  await writeFile(
    configFile,
    [
      '# as `oci setup config` writes it',
      '[DEFAULT]',
      `tenancy=${fileKey.tenancy}`,
      'region=eu-frankfurt-1',
      '',
      '[backup]',
      `user=${fileKey.user}`,
      `fingerprint=${fileKey.fingerprint}`,
      `key_file=${fileKey.keyFile}`,
      `pass_phrase=${passphrase}`,
      '',
    ].join('\n'),
  );
  const oci = ociSchema.parse({ configFile, profile: 'backup', endpoint: fake.endpoint });
  const store = openOciStore(`oci://${NS}/cfg/x`, oci, tuning);
  try {
    assert.equal(
      store.location,
      `oci://${NS}/cfg/x?region=eu-frankfurt-1`,
      'the region comes from the DEFAULT profile',
    );
    await store.put('hello.db', Readable.from([Buffer.from('hello')]));
    assert.deepEqual(
      (await store.list('')).map((o) => o.key),
      ['hello.db'],
    );
    assert.ok(fake.requests.every((r) => r.keyId === `${fileKey.tenancy}/${fileKey.user}/${fileKey.fingerprint}`));
  } finally {
    await store.close();
    await fake.stop();
  }

  assert.throws(
    () => openOciStore(`oci://${NS}/cfg`, { ...oci, profile: 'nope' }),
    (err: Error) => err instanceof ConfigError && /no profile \[nope\].*profiles: DEFAULT, backup/.test(err.message),
  );
  assert.throws(
    () => openOciStore(`oci://${NS}/cfg`, { ...oci, passphrase: 'wrong' }),
    (err: Error) =>
      err instanceof ConfigError &&
      /cannot decrypt.*store\.oci\.passphrase/.test(err.message) &&
      !err.message.includes(passphrase),
  );
  assert.throws(
    () => openOciStore(`oci://${NS}/cfg`, { ...oci, configFile: join(dir.path, 'missing') }),
    /store\.oci: no OCI credentials: cannot read store\.oci\.configFile/,
  );
  const broken = join(dir.path, 'broken-config');
  await writeFile(broken, `[DEFAULT]\ntenancy=x\npass_phrase ${passphrase}\n`);
  assert.throws(
    () => openOciStore(`oci://${NS}/cfg`, { ...oci, configFile: broken, profile: 'DEFAULT' }),
    (err: Error) => /line 3 is neither/.test(err.message) && !err.message.includes(passphrase),
  );
});

test('oci: a wrong passphrase is named as such even when the garbage it decrypts to has valid padding', async () => {
  // About one wrong passphrase in 256 yields valid CBC padding, and OpenSSL then reports a decoder error, not
  // "bad decrypt". Search for such a passphrase, so the rare case is tested every run (the previous test's
  // 'wrong' hits it only by chance: it did so once in CI).
  const right = 'right-passphrase';
  const encrypted = await makeApiKey(dir.path, { passphrase: right });
  const pem = encrypted.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: right });
  let wrong: string | undefined;
  for (let i = 0; i < 20_000 && wrong === undefined; i++) {
    try {
      createPrivateKey({ key: pem, format: 'pem', passphrase: `wrong-${i}` });
    } catch (err) {
      if (!/decrypt/i.test((err as Error).message)) wrong = `wrong-${i}`;
    }
  }
  assert.ok(wrong !== undefined, 'some passphrase among 20,000 decrypts to validly padded garbage');
  await writeFile(encrypted.keyFile, pem);
  assert.throws(
    () =>
      openOciStore(`oci://${NS}/backups/x`, ociConfigFor(encrypted, server.endpoint, { passphrase: wrong }), tuning),
    (err: Error) =>
      err instanceof ConfigError &&
      /cannot decrypt.*check store\.oci\.passphrase/.test(err.message) &&
      !err.message.includes(wrong ?? '\0'),
  );
});

test("oci: without a fingerprint (the original chart's values have none) it is derived from the key and accepted", async () => {
  const store = openOciStore(
    `oci://${NS}/backups/derived-fp`,
    { ...ociConfigFor(key, server.endpoint), fingerprint: undefined },
    tuning,
  );
  const before = server.requests.length;
  try {
    await store.put('a/1.db', Readable.from([Buffer.from('one')]));
    assert.deepEqual(await readAll((await store.get('a/1.db')).body), Buffer.from('one'));
    const signed = server.requests.slice(before);
    assert.ok(signed.length > 0);
    // The fake server checks each signature against the key registered under this key id.
    assert.ok(signed.every((r) => r.keyId === `${key.tenancy}/${key.user}/${key.fingerprint}`));
  } finally {
    await store.close();
  }
});

test('oci: configuration mistakes are config errors that name the field', async () => {
  const oci = ociConfigFor(key, server.endpoint);
  const other = await makeApiKey(dir.path);
  assert.throws(
    () => openOciStore(`oci://${NS}/b`, { ...oci, fingerprint: other.fingerprint }),
    /store\.oci\.fingerprint .* is not the fingerprint of the private key/,
  );
  assert.throws(() => openOciStore(`oci://${NS}/b`, { ...oci, user: undefined }), /missing store\.oci\.user/);
  assert.throws(
    () => openOciStore(`oci://${NS}/b`, { ...oci, configFile: '/x' }),
    /either the API-key fields .* or configFile/,
  );
  assert.throws(() => openOciStore(`oci://${NS}/b?region=eu-frankfurt-1`, oci), /give the region once/);
  assert.throws(() => openOciStore(`oci://${NS}/b`, { ...oci, region: undefined, endpoint: undefined }), /no region/);
  assert.throws(
    () => parseOciUrl('oci://user:secret@ns/b'),
    (err: Error) => err instanceof ConfigError && !err.message.includes('secret'),
  );
  assert.throws(() => parseOciUrl(`oci://${NS}`), /no bucket/);
  assert.throws(() => parseOciUrl(`oci://${NS}/b/a//c`), /empty/);
  assert.throws(() => parseOciUrl(`oci://${NS}/b?tier=archive`), /unknown parameter "tier"/);
  assert.deepEqual(parseOciUrl(`oci://${NS}/b/x/y?region=ap-tokyo-1`), {
    namespace: NS,
    bucket: 'b',
    prefix: 'x/y',
    region: 'ap-tokyo-1',
  });
  // Without an endpoint the SDK derives OCI's own from the region.
  const real = openOciStore(`oci://${NS}/b?region=eu-frankfurt-1`, { ...oci, endpoint: undefined, region: undefined });
  assert.equal(real.endpoint, 'https://objectstorage.eu-frankfurt-1.oraclecloud.com');
  await real.close();
});

test('oci: takeBackup from a real etcd through openStore writes the object and its manifest', async () => {
  const etcd = await startEtcd();
  try {
    await fillEtcd(etcd.client, 300);
    const config = loadConfig({
      env: {},
      flags: {
        endpoints: etcd.endpoint,
        // gzip: the object is gunzipped below.
        compression: 'gzip',
        store: `oci://${NS}/backups/clusters?region=us-ashburn-1`,
        'oci-endpoint': server.endpoint,
        'oci-tenancy': key.tenancy,
        'oci-user': key.user,
        'oci-fingerprint': key.fingerprint,
        'oci-private-key-file': key.keyFile,
      },
    });
    const store = await openStore(config);
    try {
      await backupAndReadBack(config, store);
    } finally {
      await store.close();
    }
  } finally {
    await etcd.stop();
  }
});
