/**
 * Delta-log test helpers: reading a segment back with tools independent of the writer (the
 * codec's decoder, our AES reader, Debian's age), the source's own history by a separate watch,
 * and a write load of puts, updates, deletes, multi-key transactions and leased keys.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { Etcd3, IWatchResponse } from 'etcd3';
import type { Config } from '../../core/config/index.js';
import { codecOf } from '../../worker/codecs.js';
import { DecryptStream } from '../../worker/crypto/decrypt.js';
import { loadKeyRing } from '../../worker/crypto/keys.js';
import { decodeEvent, type DeltaEvent, type DeltaManifest } from '../../worker/delta/segment.js';
import type { Store } from '../../worker/stores/store.js';
import { readAll } from './store-helpers.js';
import { tempDir } from './tmp.js';

const run = promisify(execFile);

/** The body of a segment after undoing its stages; checks both recorded SHA-256s. */
export async function readSegmentBody(
  store: Store,
  m: DeltaManifest,
  keys: { encryption?: Config['encryption']; ageIdentityFile?: string } = {},
): Promise<Buffer> {
  const stored = await readAll((await store.get(m.key)).body);
  if (stored.length !== m.storedSize)
    throw new Error(`${m.key}: ${stored.length} bytes, manifest says ${m.storedSize}`);
  if (createHash('sha256').update(stored).digest('hex') !== m.storedSha256) throw new Error(`${m.key}: storedSha256`);
  let plain = stored;
  if (m.age) {
    if (!keys.ageIdentityFile) throw new Error(`${m.key} is an age file; no identity given`);
    const dir = await tempDir('seg-age');
    try {
      await writeFile(join(dir.path, 'in'), stored);
      await run('age', ['-d', '-i', keys.ageIdentityFile, '-o', join(dir.path, 'out'), join(dir.path, 'in')]);
      plain = await readFile(join(dir.path, 'out'));
    } finally {
      await dir.remove();
    }
  }
  const stages: NodeJS.ReadWriteStream[] = [];
  if (m.encryption) stages.push(new DecryptStream(await loadKeyRing(keys.encryption)));
  const decompress = codecOf(m.compression).decompress;
  if (decompress) stages.push(decompress());
  const out = new PassThrough();
  const reading = readAll(out);
  await pipeline([Readable.from([plain]), ...stages, out]);
  const body = await reading;
  if (body.length !== m.bodySize) throw new Error(`${m.key}: body ${body.length} bytes, manifest says ${m.bodySize}`);
  if (createHash('sha256').update(body).digest('hex') !== m.sha256) throw new Error(`${m.key}: sha256`);
  return body;
}

export async function readSegmentEvents(
  store: Store,
  m: DeltaManifest,
  keys: Parameters<typeof readSegmentBody>[2] = {},
): Promise<DeltaEvent[]> {
  const body = await readSegmentBody(store, m, keys);
  return body
    .toString('utf8')
    .trimEnd()
    .split('\n')
    .map((line, n) => decodeEvent(line, `${m.key} line ${n + 1}`));
}

/** An event without the writer's receive time, as text: what two histories are compared by. */
export function comparable(e: DeltaEvent): string {
  return [
    e.revision,
    e.type,
    e.key.toString('base64'),
    e.value.toString('base64'),
    e.createRevision,
    e.version,
    e.lease,
  ].join(' ');
}

/** Every event of revisions from..to as etcd's own watch delivers them, by a separate client. */
export async function sourceEvents(client: Etcd3, from: number, to: number): Promise<string[]> {
  const out: string[] = [];
  if (to < from) return out;
  const watcher = await client.watch().prefix('').startRevision(String(from)).create();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`source watch did not reach revision ${to}`)), 60_000);
      watcher.on('data', (res: IWatchResponse) => {
        for (const e of res.events) {
          const revision = Number(e.kv.mod_revision);
          if (revision > to) continue;
          const put = e.type === 'Put';
          out.push(
            comparable({
              revision,
              type: put ? 'put' : 'delete',
              key: e.kv.key,
              value: put ? e.kv.value : Buffer.alloc(0),
              createRevision: put ? Number(e.kv.create_revision) : 0,
              version: put ? Number(e.kv.version) : 0,
              lease: put && e.kv.lease ? String(e.kv.lease) : '0',
              receivedAt: 0,
            }),
          );
          if (revision >= to) {
            clearTimeout(timer);
            resolve();
          }
        }
      });
      watcher.on('error', reject);
    });
  } finally {
    await watcher.cancel();
  }
  return out;
}

export async function currentRevision(client: Etcd3): Promise<number> {
  const res = await client.kv.range({ key: Buffer.from([0]), count_only: true });
  return Number(res.header.revision);
}

export interface LoadOptions {
  /** Operations to run (each one etcd revision). */
  ops: number;
  /** Key prefix, so that several loads do not collide. */
  prefix: string;
  /** Value bytes of a put. @defaultValue 200 */
  valueBytes?: number;
  /** Stop early when aborted. */
  signal?: AbortSignal;
}

/**
 * Puts, updates, deletes, transactions of several keys (several events in one revision) and
 * leased puts, deterministic for a given prefix; returns the revisions written.
 */
export async function writeLoad(client: Etcd3, options: LoadOptions): Promise<number> {
  const size = options.valueBytes ?? 200;
  const lease = client.lease(600, { autoKeepAlive: false });
  await lease.grant();
  let done = 0;
  try {
    for (let i = 0; i < options.ops && !options.signal?.aborted; i++) {
      const key = `${options.prefix}/k${i % 97}`;
      const value = `${i}-${'v'.repeat(size)}`.slice(0, size);
      switch (i % 10) {
        case 3:
          await client.delete().key(key);
          break;
        case 5:
          await client
            .if(key, 'Version', '>', -1)
            .then(
              client.put(`${options.prefix}/t${i % 13}a`).value(value),
              client.put(`${options.prefix}/t${i % 13}b`).value(value),
              client.delete().key(`${options.prefix}/k${(i + 1) % 97}`),
            )
            .commit();
          break;
        case 7:
          await lease.put(`${options.prefix}/leased${i % 5}`).value(value);
          break;
        default:
          await client.put(key).value(value);
      }
      done++;
    }
  } finally {
    await lease.revoke().catch(() => undefined);
  }
  return done;
}
