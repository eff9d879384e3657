import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { loadConfig, type Config } from '../../../core/config/index.js';
import { codecOf } from '../../../worker/codecs.js';
import { DecryptStream } from '../../../worker/crypto/decrypt.js';
import { loadKeyRing } from '../../../worker/crypto/keys.js';
import { readDeltaCatalog, listDeltaGaps, listDeltaManifests } from '../../../worker/delta/catalog.js';
import {
  decodeEvent,
  segmentManifestKey,
  buildChains,
  type DeltaEvent,
  type DeltaManifest,
} from '../../../worker/delta/segment.js';
import { segmentContent, writeGap, writeSegment } from '../../../worker/delta/segment-write.js';
import { openStore } from '../../../worker/stores/open.js';
import type { Store } from '../../../worker/stores/store.js';
import { startS3rver, S3RVER_CREDENTIALS, type S3rverServer } from '../../support/s3rver.js';
import { readAll } from '../../support/store-helpers.js';
import { tempDir } from '../../support/tmp.js';

const run = promisify(execFile);
const MARKER = 'plaintext-marker-that-must-not-be-stored';
const ETCD = { endpoint: 'http://127.0.0.1:2379', memberId: 'a', clusterId: 'b', version: '3.4.30' };

let work: { path: string; remove: () => Promise<void> };
let s3: S3rverServer;
let aesKeyFile: string;
let ageKeyFile: string;
let ageRecipient: string;

before(async () => {
  work = await tempDir('segment-write');
  s3 = await startS3rver({ buckets: ['deltas'] });
  aesKeyFile = join(work.path, 'aes.key');
  await writeFile(aesKeyFile, `${randomBytes(32).toString('base64')}\n`);
  ageKeyFile = join(work.path, 'age.txt');
  await run('age-keygen', ['-o', ageKeyFile]);
  ageRecipient = (await run('age-keygen', ['-y', ageKeyFile])).stdout.trim();
});

after(async () => {
  await s3?.stop();
  await work?.remove();
});

function configFor(provider: 'file' | 's3', cluster: string, flags: Record<string, string | boolean>): Config {
  const store =
    provider === 'file'
      ? { store: `file://${join(work.path, 'store')}` }
      : {
          store: 's3://deltas/backups',
          's3-endpoint': s3.endpoint,
          's3-access-key-id': S3RVER_CREDENTIALS.accessKeyId,
          's3-secret-access-key': S3RVER_CREDENTIALS.secretAccessKey,
          's3-region': 'us-east-1',
          's3-force-path-style': true,
        };
  return loadConfig({ env: {}, flags: { cluster, ...store, ...flags } });
}

/** Events of revisions first..last: two per revision (a put and, every third revision, a delete). */
function events(first: number, last: number): DeltaEvent[] {
  const out: DeltaEvent[] = [];
  for (let r = first; r <= last; r++) {
    out.push({
      revision: r,
      type: 'put',
      key: Buffer.from(`/registry/secrets/default/s${r}`),
      value: Buffer.from(`${MARKER}-${r}-${'x'.repeat(200)}`),
      createRevision: r,
      version: 1,
      lease: '0',
      receivedAt: 1_764_633_600_000 + r,
    });
    if (r % 3 === 0) {
      out.push({
        revision: r,
        type: 'delete',
        key: Buffer.from(`/registry/pods/default/p${r}`),
        value: Buffer.alloc(0),
        createRevision: 0,
        version: 0,
        lease: '0',
        receivedAt: 1_764_633_600_000 + r,
      });
    }
  }
  return out;
}

/** Undoes the manifest's stages with independent tools (age CLI, our AES reader, the codec's decoder). */
async function readBody(store: Store, config: Config, m: DeltaManifest): Promise<Buffer> {
  const stored = await readAll((await store.get(m.key)).body);
  assert.equal(stored.length, m.storedSize, 'storedSize');
  assert.equal(createHash('sha256').update(stored).digest('hex'), m.storedSha256, 'storedSha256');
  let plain = stored;
  if (m.age) {
    const dir = await tempDir('seg-age');
    try {
      await writeFile(join(dir.path, 'in'), stored);
      await run('age', ['-d', '-i', ageKeyFile, '-o', join(dir.path, 'out'), join(dir.path, 'in')]);
      plain = await readAll((await import('node:fs')).createReadStream(join(dir.path, 'out')));
    } finally {
      await dir.remove();
    }
  }
  const stages: NodeJS.ReadWriteStream[] = [];
  if (m.encryption) stages.push(new DecryptStream(await loadKeyRing(config.encryption)));
  const decompress = codecOf(m.compression).decompress;
  if (decompress) stages.push(decompress());
  const out = new PassThrough();
  const reading = readAll(out);
  await pipeline([Readable.from([plain]), ...stages, out]);
  return reading;
}

const VARIANTS: { provider: 'file' | 's3'; name: string; flags: () => Record<string, string> }[] = [
  { provider: 'file', name: 'zstd + age', flags: () => ({ compression: 'zstd', 'age-recipients': ageRecipient }) },
  {
    provider: 'file',
    name: 'gzip + AES-GCM',
    flags: () => ({ compression: 'gzip', 'encryption-key-file': aesKeyFile }),
  },
  { provider: 's3', name: 'zstd + AES-GCM', flags: () => ({ compression: 'zstd', 'encryption-key-file': aesKeyFile }) },
  { provider: 's3', name: 'gzip + age', flags: () => ({ compression: 'gzip', 'age-recipients': ageRecipient }) },
  { provider: 'file', name: 'none, in the clear', flags: () => ({ compression: 'none' }) },
];

describe('writeSegment and the delta catalog', () => {
  for (const [i, v] of VARIANTS.entries()) {
    it(`${v.provider}, ${v.name}: the segment reads back event for event; the catalog lists it`, async () => {
      const cluster = `seg-${i}`;
      const config = configFor(v.provider, cluster, v.flags());
      const store = await openStore(config);
      try {
        const chain = { follows: '20261202T010000Z-r100-abcd', startRevision: 101 };
        const first = events(101, 160);
        const second = events(161, 200);
        const m1 = await writeSegment(store, { config, content: segmentContent(first), chain, etcd: ETCD });
        const m2 = await writeSegment(store, { config, content: segmentContent(second), chain, etcd: ETCD });

        assert.equal(m1.firstRevision, 101);
        assert.equal(m1.lastRevision, 160);
        assert.equal(m1.eventCount, first.length);
        assert.equal(m1.firstEventAt, new Date(first[0]?.receivedAt ?? 0).toISOString());
        const expectTransforms = [v.flags().compression === 'none' ? undefined : v.flags().compression];
        if (v.flags()['encryption-key-file']) expectTransforms.push('encrypt-aes-256-gcm');
        if (v.flags()['age-recipients']) expectTransforms.push('age');
        assert.deepEqual(
          m1.transforms,
          expectTransforms.filter((t) => t !== undefined),
        );
        assert.equal(m1.age !== undefined, v.flags()['age-recipients'] !== undefined, 'age recorded');
        assert.equal(m1.encryption !== undefined, v.flags()['encryption-key-file'] !== undefined, 'AES recorded');
        if (m1.age) assert.match(m1.key, /\.events\.ndjson(\.gz|\.zst)\.age$/);

        const stored = await readAll((await store.get(m1.key)).body);
        const encrypted = m1.age !== undefined || m1.encryption !== undefined;
        // Values are base64 in the body: the NDJSON's own text shows whether anything is stored in the clear.
        assert.equal(stored.includes('"t":"put"'), !encrypted && m1.compression === 'none', 'plaintext in the object');

        const body = await readBody(store, config, m1);
        assert.equal(body.length, m1.bodySize);
        assert.equal(createHash('sha256').update(body).digest('hex'), m1.sha256);
        const decoded = body
          .toString('utf8')
          .trimEnd()
          .split('\n')
          .map((line, n) => decodeEvent(line, `${m1.key} line ${n + 1}`));
        assert.deepEqual(decoded, first);

        const listed = await listDeltaManifests(store, cluster);
        assert.deepEqual(listed, [m1, m2]);
        const { chains, problems } = buildChains(listed);
        assert.deepEqual(problems, []);
        assert.equal(chains.length, 1);
        assert.equal(chains[0]?.endRevision, 200);
        assert.equal(chains[0]?.fromSnapshot, true);
      } finally {
        await store.close();
      }
    });
  }

  it('a re-sent range replaces the segment under the same names', async () => {
    const config = configFor('file', 'seg-resend', { compression: 'zstd' });
    const store = await openStore(config);
    try {
      const chain = { follows: 's', startRevision: 5 };
      await writeSegment(store, { config, content: segmentContent(events(5, 9)), chain, etcd: ETCD });
      const again = await writeSegment(store, { config, content: segmentContent(events(5, 9)), chain, etcd: ETCD });
      const catalog = await readDeltaCatalog(store, 'seg-resend');
      assert.deepEqual(catalog.manifests, [again]);
      assert.equal(catalog.objects.length, 2, 'one object and one manifest');
    } finally {
      await store.close();
    }
  });

  it('never writes an empty segment', async () => {
    const config = configFor('file', 'seg-empty', { compression: 'none' });
    const store = await openStore(config);
    try {
      assert.throws(() => segmentContent([]), /never empty/);
      await assert.rejects(
        writeSegment(store, {
          config,
          content: {
            chunks: [],
            firstRevision: 1,
            lastRevision: 1,
            eventCount: 0,
            firstEventAt: 0,
            lastEventAt: 0,
            bytes: 0,
            release: () => undefined,
          },
          chain: { follows: 's', startRevision: 1 },
          etcd: ETCD,
        }),
        /never empty/,
      );
      assert.deepEqual(await store.list('seg-empty/'), []);
    } finally {
      await store.close();
    }
  });

  it('the catalog leaves out manifests without object, of another cluster or misnamed, and lists gaps', async () => {
    const config = configFor('file', 'seg-bad', { compression: 'none' });
    const store = await openStore(config);
    try {
      const chain = { follows: 's', startRevision: 1 };
      const good = await writeSegment(store, { config, content: segmentContent(events(1, 4)), chain, etcd: ETCD });
      const lost = await writeSegment(store, { config, content: segmentContent(events(5, 8)), chain, etcd: ETCD });
      await store.delete(lost.key);
      const put = (key: string, text: string) => store.put(key, Readable.from([text]));
      await put(segmentManifestKey('seg-bad', 9, 12), JSON.stringify({ ...good, cluster: 'other' }));
      await put(segmentManifestKey('seg-bad', 13, 14), JSON.stringify(good));
      await put(segmentManifestKey('seg-bad', 15, 16), 'not json');
      await writeGap(store, {
        format: 'etcd-autobackup-delta/v1',
        cluster: 'seg-bad',
        fromRevision: 5,
        reason: 'segment-missing',
        detail: 'test',
        detectedAt: new Date(0).toISOString(),
      });
      const problems: string[] = [];
      const catalog = await readDeltaCatalog(store, 'seg-bad', { onInvalid: (k, p) => problems.push(`${k}: ${p}`) });
      assert.deepEqual(catalog.manifests, [good]);
      assert.equal(catalog.gaps.length, 1);
      assert.equal(catalog.gaps[0]?.reason, 'segment-missing');
      assert.deepEqual((await listDeltaGaps(store, 'seg-bad')).length, 1);
      assert.equal(problems.length, 4, problems.join('\n'));
      assert.ok(problems.some((p) => /segment object .* is missing/.test(p)));
      assert.ok(problems.some((p) => /cluster "other"/.test(p)));
      assert.ok(problems.some((p) => /name does not match/.test(p)));
      assert.ok(problems.some((p) => /not JSON/.test(p)));
    } finally {
      await store.close();
    }
  });

  it('a store that fails to list or to return a manifest rejects the whole read', async () => {
    const config = configFor('file', 'seg-fail', { compression: 'none' });
    const store = await openStore(config);
    try {
      await writeSegment(store, {
        config,
        content: segmentContent(events(1, 3)),
        chain: { follows: 's', startRevision: 1 },
        etcd: ETCD,
      });
      const failingGet: Store = {
        ...store,
        location: store.location,
        list: (p) => store.list(p),
        get: () => Promise.reject(new Error('503 slow down')),
        put: (k, b, o) => store.put(k, b, o),
        delete: (k) => store.delete(k),
        close: () => Promise.resolve(),
      };
      await assert.rejects(listDeltaManifests(failingGet, 'seg-fail'), /503 slow down/);
      const failingList: Store = {
        ...failingGet,
        get: (k) => store.get(k),
        list: () => Promise.reject(new Error('partial')),
      };
      await assert.rejects(listDeltaManifests(failingList, 'seg-fail'), /partial/);
    } finally {
      await store.close();
    }
  });
});
