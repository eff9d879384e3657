/**
 * `etcd-autobackup decrypt`: a stored object copied out of the store, with nothing but the CLI and
 * its key, to the compressed bytes that zstd -d / gunzip open. Runs the real CLI, the real `age`
 * and `zstd` binaries.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { AgeEncryptStream, newHeader } from '../../worker/crypto/age.js';
import { EncryptStream } from '../../worker/crypto/encrypt.js';
import { readKeyFile } from '../../worker/crypto/keys.js';
import { runCli, runCliOk } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
let work: { path: string; remove: () => Promise<void> };
let keyFile: string;
let otherKeyFile: string;
let identity: string;
let recipient: string;
/** Compressible plaintext spanning several 64 KiB chunks, zstd-compressed as the worker stores it. */
let plain: Buffer;
let compressed: Buffer;
let aesObject: string;
let ageObject: string;

async function through(stream: NodeJS.ReadWriteStream, bytes: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from([bytes]),
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

before(async () => {
  work = await tempDir('cli-decrypt');
  keyFile = join(work.path, 'key');
  otherKeyFile = join(work.path, 'other-key');
  await writeFile(keyFile, `${randomBytes(32).toString('base64')}\n`);
  await writeFile(otherKeyFile, `${randomBytes(32).toString('base64')}\n`);
  identity = join(work.path, 'identity.txt');
  await run('age-keygen', ['-o', identity]);
  recipient = (await run('age-keygen', ['-y', identity])).stdout.trim();

  const lines: string[] = [];
  for (let i = 0; i < 20_000; i++) lines.push(`/registry/pods/default/web-${i} {"phase":"Running","n":${i}}`);
  plain = Buffer.concat([Buffer.from(lines.join('\n')), randomBytes(100_000)]);
  const raw = join(work.path, 'plain.db');
  await writeFile(raw, plain);
  await run('zstd', ['-q', '-3', raw, '-o', `${raw}.zst`]);
  compressed = await readFile(`${raw}.zst`);

  aesObject = join(work.path, 'snap.db.zst');
  await writeFile(aesObject, await through(new EncryptStream(await readKeyFile(keyFile, 'test')), compressed));
  const { header, fileKey } = await newHeader([recipient]);
  ageObject = join(work.path, 'snap.db.zst.age');
  await writeFile(ageObject, await through(new AgeEncryptStream(header, fileKey), compressed));
});

after(async () => {
  await work?.remove();
});

test('AES-256-GCM and age objects decrypt to stdout, and the documented pipe into zstd -d gives the database back', async () => {
  const aes = await runCliOk(['decrypt', aesObject, '--encryption-key-file', keyFile]);
  assert.ok(aes.stdoutBytes.equals(compressed), 'AES object: stdout is the zstd stream that was encrypted');
  const age = await runCliOk(['decrypt', ageObject, '--identity', identity]);
  assert.ok(age.stdoutBytes.equals(compressed), 'age object: stdout is the zstd stream that was encrypted');
  // An older key, given only as a decryption key (after a rotation), reads it too; stdin works.
  const rotated = await runCliOk(
    ['decrypt', '-', '--encryption-key-file', otherKeyFile, '--decryption-key-files', keyFile],
    { input: await readFile(aesObject) },
  );
  assert.ok(rotated.stdoutBytes.equals(compressed));

  const cli = ['--import', 'tsx', join(process.cwd(), 'cli', 'main.ts')].map((a) => `'${a}'`).join(' ');
  const out = join(work.path, 'restored.db');
  await run('bash', [
    '-c',
    `set -euo pipefail; '${process.execPath}' ${cli} decrypt '${aesObject}' --encryption-key-file '${keyFile}' | zstd -d > '${out}'`,
  ]);
  assert.ok((await readFile(out)).equals(plain), 'decrypt | zstd -d reproduces the database byte for byte');
});

test('a file that age -r encrypted decrypts with our command', async () => {
  const byAge = join(work.path, 'by-age.age');
  await run('age', ['-r', recipient, '-o', byAge, join(work.path, 'plain.db.zst')]);
  const r = await runCliOk(['decrypt', byAge, '--identity', identity]);
  assert.ok(r.stdoutBytes.equals(compressed));
});

test('--output appears only when the whole object decrypted; a truncated object leaves no file and fails naming it as cut short', async () => {
  const out = join(work.path, 'out.zst');
  await runCliOk(['decrypt', ageObject, '--identity', identity, '--output', out]);
  assert.ok((await readFile(out)).equals(compressed));

  const again = await runCli(['decrypt', ageObject, '--identity', identity, '--output', out]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /--output .*out\.zst already exists/);
  assert.ok((await readFile(out)).equals(compressed), 'an existing file is never overwritten');

  for (const [object, flags] of [
    [aesObject, ['--encryption-key-file', keyFile]],
    [ageObject, ['--identity', identity]],
  ] as const) {
    const whole = await readFile(object);
    const cut = join(work.path, `cut-${object.endsWith('.age') ? 'age' : 'aes'}`);
    await writeFile(cut, whole.subarray(0, whole.length - 1000));
    const target = join(work.path, `never-${object.endsWith('.age') ? 'age' : 'aes'}.zst`);
    const r = await runCli(['decrypt', cut, ...flags, '--output', target]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`${cut.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} cannot be decrypted: .*(truncated|cut)`),
    );
    const left = (await readdir(work.path)).filter((f) => f.startsWith('never-'));
    assert.deepEqual(left, [], 'neither the output nor its partial file is left behind');
  }
});

test('wrong key, missing identity, an unencrypted object and a missing file: each says what to fix', async () => {
  const wrongKey = await runCli(['decrypt', aesObject, '--encryption-key-file', otherKeyFile]);
  assert.equal(wrongKey.code, 2, wrongKey.stderr);
  assert.match(wrongKey.stderr, /encrypted with key id [0-9a-f]+ and the configured keys are [0-9a-f]+/);
  assert.equal(wrongKey.stdoutBytes.length, 0);

  const other = join(work.path, 'other.txt');
  await run('age-keygen', ['-o', other]);
  const wrongIdentity = await runCli(['decrypt', ageObject, '--identity', other]);
  assert.equal(wrongIdentity.code, 1, wrongIdentity.stderr);
  assert.match(wrongIdentity.stderr, /cannot be decrypted: none of the 1 identities .* is a recipient/);
  assert.equal(wrongIdentity.stdoutBytes.length, 0);

  const noIdentity = await runCli(['decrypt', ageObject]);
  assert.equal(noIdentity.code, 2);
  assert.match(noIdentity.stderr, /is an age file: give the identity that decrypts it with --identity FILE/);

  const zst = await runCli(['decrypt', join(work.path, 'plain.db.zst'), '--identity', identity]);
  assert.equal(zst.code, 1);
  assert.match(zst.stderr, /is not encrypted: it is zstd-compressed and opens with zstd -d/);

  const missing = await runCli(['decrypt', join(work.path, 'nope.db.zst')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.db\.zst does not exist/);
});
