import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inspect, promisify } from 'node:util';
import { loadConfig } from '../../core/config/index.js';
import { ConfigError } from '../../core/errors.js';
import {
  AgeDecryptStream,
  AgeEncryptStream,
  headerEnd,
  loadIdentities,
  loadRecipients,
  newHeader,
  parseRecipients,
  type AgeIdentities,
} from '../../worker/crypto/age.js';
import { DecryptionError } from '../../worker/crypto/format.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
let work: { path: string; remove: () => Promise<void> };
const key = { a: '', b: '' };
const recipient = { a: '', b: '' };
let identityA: AgeIdentities;
let identityB: AgeIdentities;

before(async () => {
  work = await tempDir('age-unit');
  for (const k of ['a', 'b'] as const) {
    key[k] = join(work.path, `key-${k}.txt`);
    await run('age-keygen', ['-o', key[k]]);
    recipient[k] = (await run('age-keygen', ['-y', key[k]])).stdout.trim();
  }
  identityA = (await loadIdentities([key.a])) as AgeIdentities;
  identityB = (await loadIdentities([key.b])) as AgeIdentities;
});

after(async () => {
  await work?.remove();
});

/** Pushes `bytes` through a stream in odd-sized pieces, so chunk and header boundaries fall anywhere. */
async function through(stream: NodeJS.ReadWriteStream, bytes: Buffer, piece = 7777): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += piece) parts.push(bytes.subarray(at, at + piece));
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(parts),
    stream,
    new Writable({
      write(c: Buffer, _e, done) {
        out.push(c);
        done();
      },
    }),
  );
  return Buffer.concat(out);
}

async function ourEncrypt(plain: Buffer, recipients: string[]): Promise<Buffer> {
  const { header, fileKey } = await newHeader(recipients);
  return through(new AgeEncryptStream(header, fileKey), plain);
}

async function ageCli(args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile('age', args, { encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`age ${args.join(' ')}: ${stderr.toString()}`)) : resolve(stdout),
    );
    // age stops reading at the first bad byte; the rest of the input then has nowhere to go.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
  });
}

const SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 200_001];

test('our age files decrypt with age -d; files age -r wrote decrypt with our stage, at every chunk boundary', async () => {
  for (const size of SIZES) {
    const plain = randomBytes(size);
    const sealed = await ourEncrypt(plain, [recipient.a, recipient.b]);
    assert.ok(sealed.toString('latin1').startsWith('age-encryption.org/v1\n'));
    assert.deepEqual(await ageCli(['-d', '-i', key.a], sealed), plain, `age -d -i a, ${size} bytes`);
    assert.deepEqual(await ageCli(['-d', '-i', key.b], sealed), plain, `age -d -i b, ${size} bytes`);
    assert.deepEqual(await through(new AgeDecryptStream(identityA), sealed), plain, `ours, ${size} bytes`);

    const theirs = await ageCli(['-r', recipient.a], plain);
    assert.deepEqual(await through(new AgeDecryptStream(identityA), theirs, 1000), plain, `from age -r, ${size}`);
  }
});

test('memory stays flat: a stage holds about one chunk whatever the size', async () => {
  const { header, fileKey } = await newHeader([recipient.a]);
  const enc = new AgeEncryptStream(header, fileKey);
  const sealed = await through(enc, randomBytes(4 << 20), 100_000);
  assert.ok(enc.peakBuffered < 2 * 65536 + 100_000, `encrypt held ${enc.peakBuffered}`);
  const dec = new AgeDecryptStream(identityA);
  await through(dec, sealed, 100_000);
  assert.ok(dec.peakBuffered < 2 * 65536 + 100_000, `decrypt held ${dec.peakBuffered}`);
});

async function rejects(sealed: Buffer, identities: AgeIdentities, expected: RegExp, label: string): Promise<void> {
  await assert.rejects(through(new AgeDecryptStream(identities), sealed), (err) => {
    assert.ok(err instanceof DecryptionError, `${label}: ${String(err)}`);
    assert.match(err.message, expected, label);
    return true;
  });
  // The reference tool refuses the same input: the checks are age's, not ours alone.
  await assert.rejects(ageCli(['-d', '-i', key.a], sealed), `age -d accepted ${label}`);
}

test('bad input: wrong identity, other header, truncation, reordered, dropped and appended chunks', async () => {
  const plain = randomBytes(5 * 65536 + 1234);
  const sealed = await ourEncrypt(plain, [recipient.a]);
  const start = headerEnd(sealed) + 16;
  const SEALED = 65536 + 16;
  const chunk = (i: number) => sealed.subarray(start + i * SEALED, Math.min(sealed.length, start + (i + 1) * SEALED));
  const head = sealed.subarray(0, start);

  await assert.rejects(through(new AgeDecryptStream(identityB), sealed), /none of the 1 identities in .*key-b\.txt/);
  // The header of a file for another recipient, spliced onto our payload.
  const other = await ourEncrypt(Buffer.alloc(0), [recipient.b]);
  await rejects(
    Buffer.concat([other.subarray(0, headerEnd(other)), sealed.subarray(headerEnd(sealed))]),
    identityA,
    /none of the 1 identities/,
    'other header',
  );
  // Header altered: its MAC fails.
  const flipped = Buffer.from(sealed);
  flipped[30] = flipped[30] === 0x41 ? 0x42 : 0x41;
  await rejects(flipped, identityA, /header is invalid|none of the/, 'header bit');

  await rejects(sealed.subarray(0, 40), identityA, /ends inside the age header/, 'cut in the header');
  await rejects(sealed.subarray(0, start - 3), identityA, /payload nonce/, 'cut in the nonce');
  await rejects(
    sealed.subarray(0, start + 2 * SEALED + 100),
    identityA,
    /chunk 2 .*fails authentication/,
    'cut mid-chunk',
  );
  await rejects(
    sealed.subarray(0, start + 3 * SEALED),
    identityA,
    /without the last-chunk marker: the object is truncated/,
    'cut at a chunk boundary',
  );
  await rejects(
    Buffer.concat([head, chunk(0), chunk(2), chunk(1), chunk(3), chunk(4), chunk(5)]),
    identityA,
    /chunk 1 .*fails authentication/,
    'reordered',
  );
  await rejects(
    Buffer.concat([head, chunk(0), chunk(1), chunk(3), chunk(4), chunk(5)]),
    identityA,
    /chunk 2 .*fails authentication/,
    'dropped',
  );
  await rejects(
    Buffer.concat([sealed, chunk(1)]),
    identityA,
    /chunk 5 .*(marked last but more bytes follow|fails authentication)/,
    'appended chunk',
  );
  await rejects(Buffer.concat([sealed, Buffer.from('x')]), identityA, /fails authentication/, 'one byte appended');

  // A full last chunk followed by another chunk is named as appended data.
  const full = await ourEncrypt(randomBytes(2 * 65536), [recipient.a]);
  const fs = headerEnd(full) + 16;
  await rejects(
    Buffer.concat([full, full.subarray(fs, fs + SEALED)]),
    identityA,
    /chunk 1 .*marked last but more bytes follow: data was appended/,
    'appended after a full last chunk',
  );
});

test('recipients: values, a file as age -R reads it, duplicates merged; malformed ones name the setting', async () => {
  const file = join(work.path, 'recipients.txt');
  await writeFile(file, `# backup operators\n\n  ${recipient.b}  \n# old\n${recipient.a}\n`);
  assert.deepEqual(await loadRecipients({ recipients: [recipient.a], recipientsFile: file }), [
    recipient.a,
    recipient.b,
  ]);
  assert.deepEqual(parseRecipients(await readFile(file, 'utf8'), 'f'), [recipient.b, recipient.a]);

  await writeFile(file, `${recipient.a}\nage1notarecipient\n`);
  await assert.rejects(loadRecipients({ recipientsFile: file }), (err) => {
    assert.ok(err instanceof ConfigError);
    assert.match(
      err.message,
      /encryption\.recipientsFile .*recipients\.txt line 2: "age1notareci…" is not an age X25519 recipient/,
    );
    return true;
  });
  // Right shape, wrong checksum.
  const bad = recipient.a.slice(0, -1) + (recipient.a.endsWith('q') ? 'p' : 'q');
  await assert.rejects(loadRecipients({ recipients: [bad] }), /encryption\.recipients\[0\]/);

  assert.throws(
    () => loadConfig({ env: {}, flags: { endpoints: 'http://127.0.0.1:2379', 'age-recipients': 'age1xyz' } }),
    (err) => err instanceof ConfigError && /encryption\.recipients/.test(err.message),
  );
  assert.throws(
    () =>
      loadConfig({
        env: {},
        flags: { endpoints: 'http://127.0.0.1:2379', 'age-recipients': recipient.a, 'encryption-key-file': file },
      }),
    (err) => err instanceof ConfigError && /keyFile .* cannot both be set/.test(err.message),
  );
  const config = loadConfig({
    env: {},
    flags: { endpoints: 'http://127.0.0.1:2379', 'age-recipients': `${recipient.a},${recipient.b}`, identity: key.a },
  });
  assert.deepEqual(config.encryption.recipients, [recipient.a, recipient.b]);
  assert.deepEqual(config.encryption.identityFiles, [key.a]);
});

test('identities: never shown; a malformed file is refused without echoing it', async () => {
  const secret = (await readFile(key.a, 'utf8')).split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1')) as string;
  assert.ok(!inspect(identityA).includes(secret));
  assert.ok(!JSON.stringify(identityA).includes(secret));
  const bad = join(work.path, 'bad-key.txt');
  await writeFile(bad, `# created: today\n${secret.slice(0, -2)}\n`);
  await assert.rejects(loadIdentities([bad]), (err) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /identityFiles\[0\] .*bad-key\.txt line 2 is not an age X25519 identity/);
    assert.ok(!err.message.includes(secret.slice(0, 30)));
    return true;
  });
  await writeFile(bad, '# nothing\n');
  await assert.rejects(loadIdentities([bad]), /holds no identity/);
});
