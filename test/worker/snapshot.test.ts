/**
 * The snapshot engine against real etcd: TLS, member choice, and the failures that must leave
 * nothing visible in the store (etcd killed mid-stream, a corrupted SHA-256 trailer).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pipeline as pipe, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { createCa, issueCert } from '../../certs/pki.js';
import { loadConfig, type Config } from '../../core/config/index.js';
import { SnapshotError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { takeBackup } from '../../worker/backup.js';
import { Sha256TrailerVerifier } from '../../worker/sha256-trailer.js';
import { openStore } from '../../worker/stores/open.js';
import { FileStore } from '../../worker/stores/file.js';
import type { Store } from '../../worker/stores/store.js';
import { fillEtcd, startEtcd, startEtcdCluster, type EtcdServer } from '../support/etcd.js';
import { startTamperProxy } from '../support/grpc-tamper-proxy.js';
import { startHoldProxy } from '../support/hold-proxy.js';
import { freePort } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

const log = createLogger({ level: 'silent' });

const execFileAsync = promisify(execFile);

function configFor(flags: Record<string, string | boolean>, storeDir: string): Config {
  return loadConfig({ env: {}, flags: { store: `file://${storeDir}`, ...flags } });
}

async function allFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => e.name);
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('Sha256TrailerVerifier', () => {
  const db = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7) % 251));
  const good = Buffer.concat([db, createHash('sha256').update(db).digest()]);

  async function run(input: Buffer, chunk: number): Promise<{ out: Buffer; verifier: Sha256TrailerVerifier }> {
    const pieces: Buffer[] = [];
    for (let i = 0; i < input.length; i += chunk) pieces.push(input.subarray(i, i + chunk));
    const verifier = new Sha256TrailerVerifier();
    const out: Buffer[] = [];
    await pipeline(Readable.from(pieces), verifier, async (src: AsyncIterable<Buffer>) => {
      for await (const c of src) out.push(c);
    });
    return { out: Buffer.concat(out), verifier };
  }

  test('passes every byte through and reports the hash, whatever the chunking', async () => {
    for (const chunk of [1, 7, 31, 32, 33, 4096, good.length]) {
      const { out, verifier } = await run(good, chunk);
      assert.ok(out.equals(good), `chunk ${chunk}: output differs`);
      assert.equal(verifier.result().dbSize, db.length);
      assert.equal(verifier.result().sha256, createHash('sha256').update(db).digest('hex'));
    }
  });

  test('fails on a flipped byte in the data or the trailer, and on a short stream', async () => {
    const flippedData = Buffer.from(good);
    flippedData[10] = (flippedData[10] as number) ^ 1;
    await assert.rejects(run(flippedData, 4096), /SHA-256 mismatch/);
    const flippedTrailer = Buffer.from(good);
    flippedTrailer[good.length - 1] = (flippedTrailer[good.length - 1] as number) ^ 1;
    await assert.rejects(run(flippedTrailer, 33), /SHA-256 mismatch/);
    await assert.rejects(run(good.subarray(0, 20), 4), /too short/);
  });
});

describe('snapshot from real etcd', () => {
  let etcd: EtcdServer;
  let revision: number;
  before(async () => {
    etcd = await startEtcd();
    revision = await fillEtcd(etcd.client, 3000, 200);
  });
  after(async () => etcd.stop());

  test('the stored object is etcd snapshot bytes whose trailer matches the manifest', async () => {
    const dir = await tempDir('store');
    try {
      const config = configFor({ endpoints: etcd.endpoint, compression: 'gzip' }, dir.path);
      const store = await openStore(config);
      const m = await takeBackup({ config, store, log, cause: { source: 'manual' } });
      assert.ok(m.etcd.revision >= revision);
      assert.equal(m.compression, 'gzip');
      const { body } = await store.get(m.key);
      const raw = await collect(body.pipe(createGunzip()));
      assert.equal(raw.length, m.snapshotSize);
      assert.equal(raw.length, m.dbSize + 32);
      const sha = createHash('sha256')
        .update(raw.subarray(0, raw.length - 32))
        .digest();
      assert.equal(sha.toString('hex'), m.sha256);
      assert.ok(sha.equals(raw.subarray(raw.length - 32)));
    } finally {
      await dir.remove();
    }
  });

  test('a corrupted trailer on the wire publishes nothing and says so', async () => {
    const dir = await tempDir('store');
    const proxy = await startTamperProxy(etcd.endpoint);
    try {
      const config = configFor({ endpoints: proxy.endpoint, compression: 'none' }, dir.path);
      const err = await takeBackup({ config, store: await openStore(config), log, cause: { source: 'manual' } }).then(
        () => assert.fail('snapshot should fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof SnapshotError);
      assert.equal(err.stage, 'verify');
      assert.match(err.message, /SHA-256 mismatch/);
      assert.match(err.message, /nothing was published/);
      assert.deepEqual(await allFiles(dir.path), []);
      // The proxy itself is faithful: with tampering off the same path succeeds.
      proxy.corruptTrailer = false;
      await takeBackup({ config, store: await openStore(config), log, cause: { source: 'manual' } });
    } finally {
      await proxy.close();
      await dir.remove();
    }
  });

  test('snapshot.timeout expiring mid-stream fails the snapshot naming the setting, and publishes nothing', async () => {
    const dir = await tempDir('store');
    // etcd's send stalls after 8 KiB of the snapshot (as over a congested link) until released.
    const proxy = await startHoldProxy(Number(new URL(etcd.endpoint).port));
    try {
      const held = proxy.holdNext(8 * 1024);
      const config = configFor({ endpoints: proxy.endpoint, 'snapshot-timeout': '2s' }, dir.path);
      const run = takeBackup({ config, store: await openStore(config), log, cause: { source: 'manual' } });
      await held;
      await assert.rejects(run, (e: unknown) => {
        assert.ok(e instanceof SnapshotError, String(e));
        assert.equal(e.stage, 'stream');
        assert.match(e.message, /timed out after 2000 ms \(snapshot\.timeout\); nothing was published/);
        return true;
      });
      assert.deepEqual(await allFiles(dir.path), []);
    } finally {
      proxy.release();
      await proxy.stop();
      await dir.remove();
    }
  });

  test('a dead endpoint is skipped when another member answers', async () => {
    const dir = await tempDir('store');
    try {
      const dead = `http://127.0.0.1:${await freePort()}`;
      const config = configFor({ endpoints: `${dead},${etcd.endpoint}`, 'etcd-dial-timeout': '2s' }, dir.path);
      const m = await takeBackup({ config, store: await openStore(config), log, cause: { source: 'manual' } });
      assert.equal(m.etcd.endpoint, etcd.endpoint);
    } finally {
      await dir.remove();
    }
  });

  test('no member reachable fails at the connect stage naming the endpoint', async () => {
    const dir = await tempDir('store');
    try {
      const dead = `http://127.0.0.1:${await freePort()}`;
      const config = configFor({ endpoints: dead, 'etcd-dial-timeout': '1s' }, dir.path);
      await assert.rejects(
        takeBackup({ config, store: await openStore(config), log, cause: { source: 'manual' } }),
        (e: unknown) => {
          assert.ok(e instanceof SnapshotError);
          assert.equal(e.stage, 'connect');
          assert.ok(e.message.includes(dead));
          return true;
        },
      );
    } finally {
      await dir.remove();
    }
  });
});

test('etcd killed mid-stream: a stream-stage error and nothing in the store', async () => {
  const etcd = await startEtcd({ args: ['--quota-backend-bytes', String(1024 * 1024 * 1024)] });
  const dir = await tempDir('store');
  try {
    await fillEtcd(etcd.client, 1500, 20_000);
    const config = configFor({ endpoints: etcd.endpoint, compression: 'none' }, dir.path);
    // A store that writes slowly: backpressure keeps etcd's stream running for seconds, so etcd
    // dies mid-way (progress is reported about once a second).
    const files = new FileStore(dir.path);
    const store: Store = {
      location: files.location,
      put: (key, body, opts) =>
        files.put(
          key,
          pipe(
            body,
            new Transform({
              transform(chunk: Buffer, _enc, done) {
                setTimeout(() => done(null, chunk), 5);
              },
            }),
            () => undefined,
          ),
          opts,
        ),
      list: (p) => files.list(p),
      get: (k) => files.get(k),
      delete: (k) => files.delete(k),
      close: () => files.close(),
    };
    let killed = false;
    const err = await takeBackup({
      config,
      store,
      log,
      cause: { source: 'manual' },
      onProgress: (p) => {
        if (!killed && p.bytes > 1024 * 1024) {
          killed = true;
          etcd.kill();
        }
      },
    }).then(
      () => assert.fail('snapshot should fail'),
      (e: unknown) => e,
    );
    assert.ok(killed, 'etcd was killed during the stream');
    assert.ok(err instanceof SnapshotError, String(err));
    assert.equal(err.stage, 'stream');
    assert.match(err.message, /nothing was published/);
    assert.deepEqual(await allFiles(dir.path), [], 'no object, manifest or temp file is left');
  } finally {
    await etcd.stop();
    await dir.remove();
  }
});

describe('TLS with client-certificate auth', () => {
  let etcd: EtcdServer;
  let pki: { path: string; remove: () => Promise<void> };
  const files = { ca: '', cert: '', key: '', clientCert: '', clientKey: '', otherCa: '' };
  before(async () => {
    pki = await tempDir('pki');
    const ca = createCa('etcd-ca');
    const server = issueCert(ca, {
      commonName: 'etcd',
      ipAddresses: ['127.0.0.1'],
      dnsNames: ['localhost'],
      usage: ['server', 'client'],
    });
    const client = issueCert(ca, { commonName: 'etcd-autobackup', usage: ['client'] });
    const other = createCa('some-other-ca');
    const write = async (name: keyof typeof files, text: string) => {
      files[name] = join(pki.path, name);
      await writeFile(files[name], text);
    };
    await write('ca', ca.cert);
    await write('cert', server.cert);
    await write('key', server.key);
    await write('clientCert', client.cert);
    await write('clientKey', client.key);
    await write('otherCa', other.cert);
    etcd = await startEtcd({
      tls: {
        ca: files.ca,
        cert: files.cert,
        key: files.key,
        clientCertAuth: true,
        clientCert: files.clientCert,
        clientKey: files.clientKey,
      },
    });
    await fillEtcd(etcd.client, 200);
  });
  after(async () => {
    await etcd?.stop();
    await pki.remove();
  });

  test('a snapshot over TLS with the CA and a client certificate works', async () => {
    const dir = await tempDir('store');
    try {
      const config = configFor(
        { endpoints: etcd.endpoint, cacert: files.ca, cert: files.clientCert, key: files.clientKey },
        dir.path,
      );
      const m = await takeBackup({ config, store: await openStore(config), log, cause: { source: 'manual' } });
      assert.ok(m.dbSize > 0);
    } finally {
      await dir.remove();
    }
  });

  test('a wrong CA fails at connect with a message that points at etcd.cacert', async () => {
    const dir = await tempDir('store');
    try {
      const config = configFor(
        {
          endpoints: etcd.endpoint,
          cacert: files.otherCa,
          cert: files.clientCert,
          key: files.clientKey,
          'etcd-dial-timeout': '3s',
        },
        dir.path,
      );
      await assert.rejects(
        takeBackup({ config, store: await openStore(config), log, cause: { source: 'manual' } }),
        (e: unknown) => {
          assert.ok(e instanceof SnapshotError);
          assert.equal(e.stage, 'connect');
          assert.match(e.message, /etcd\.cacert/);
          return true;
        },
      );
      assert.deepEqual(await allFiles(dir.path), []);
    } finally {
      await dir.remove();
    }
  });

  test('an https endpoint without a CA file is a clear error', async () => {
    const dir = await tempDir('store');
    try {
      const config = configFor({ endpoints: etcd.endpoint }, dir.path);
      await assert.rejects(
        takeBackup({ config, store: await openStore(config), log, cause: { source: 'manual' } }),
        /needs etcd\.cacert/,
      );
    } finally {
      await dir.remove();
    }
  });
});

/** The member id and the leader id an etcd endpoint reports, as etcdctl prints them (decimal). */
async function etcdctlStatus(endpoint: string): Promise<{ member: bigint; leader: bigint }> {
  const { stdout } = await execFileAsync('etcdctl', ['--endpoints', endpoint, 'endpoint', 'status', '-w', 'fields'], {
    env: { ...process.env, ETCDCTL_API: '3' },
  });
  const field = (name: string) => {
    const m = new RegExp(`"${name}" : (\\d+)`).exec(stdout);
    assert.ok(m?.[1], `etcdctl printed no ${name}: ${stdout}`);
    return BigInt(m[1]);
  };
  return { member: field('MemberID'), leader: field('Leader') };
}

test('a follower is preferred, the leader when asked', async () => {
  const cluster = await startEtcdCluster(3);
  const dir = await tempDir('store');
  try {
    await fillEtcd((cluster[0] as EtcdServer).client, 100);
    const endpoints = cluster.map((m) => m.endpoint).join(',');
    const follower = await takeBackup({
      config: configFor({ endpoints }, dir.path),
      store: new FileStore(dir.path),
      log,
      cause: { source: 'manual' },
    });
    assert.equal(follower.etcd.isLeader, false);
    // Asked of etcd itself, through etcdctl rather than the client the code uses.
    const seen = await etcdctlStatus(follower.etcd.endpoint);
    assert.equal(seen.member, BigInt(`0x${follower.etcd.memberId}`), 'the manifest names the member it read from');
    assert.notEqual(seen.member, seen.leader, 'that member is a follower');
    const leader = await takeBackup({
      config: configFor({ endpoints, 'prefer-leader': true }, dir.path),
      store: new FileStore(dir.path),
      log,
      cause: { source: 'manual' },
    });
    assert.equal(leader.etcd.isLeader, true);
    const asked = await etcdctlStatus(leader.etcd.endpoint);
    assert.equal(asked.member, BigInt(`0x${leader.etcd.memberId}`));
    assert.equal(asked.member, asked.leader, 'with prefer-leader, etcd says that member leads');
    assert.equal(follower.etcd.clusterId, leader.etcd.clusterId);
    assert.notEqual(follower.etcd.memberId, leader.etcd.memberId);
  } finally {
    await Promise.all(cluster.map((m) => m.stop()));
    await dir.remove();
  }
});

test('with etcd auth on, the snapshot call carries the auth token etcd requires', async () => {
  const etcd = await startEtcd();
  const dir = await tempDir('store');
  try {
    await fillEtcd(etcd.client, 200, 100);
    await etcd.client.user('root').create('root-pw');
    await etcd.client.role('root').create();
    await etcd.client.user('root').addRole('root');
    await etcd.client.auth.authEnable({});
    const config = configFor(
      { endpoints: etcd.endpoint, compression: 'none', 'etcd-username': 'root', 'etcd-password': 'root-pw' },
      dir.path,
    );
    const store = await openStore(config);
    const m = await takeBackup({ config, store, log, cause: { source: 'manual' } });
    const raw = await collect((await store.get(m.key)).body);
    assert.equal(raw.length, m.dbSize + 32);
    assert.equal(createHash('sha256').update(raw.subarray(0, m.dbSize)).digest('hex'), m.sha256);
  } finally {
    await etcd.stop();
    await dir.remove();
  }
});
