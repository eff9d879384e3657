import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { format, inspect } from 'node:util';
import { loadConfig } from '../../core/config/index.js';
import { ConfigError } from '../../core/errors.js';
import { keyIdOf } from '../../worker/crypto/format.js';
import { loadKeyRing, MasterKey, parseKeyFile } from '../../worker/crypto/keys.js';
import { tempDir } from '../support/tmp.js';

let work: { path: string; remove: () => Promise<void> };
before(async () => {
  work = await tempDir('keys');
});
after(async () => {
  await work?.remove();
});

async function keyFile(name: string, content: string | Buffer): Promise<string> {
  const file = join(work.path, name);
  await writeFile(file, content);
  return file;
}

test('a key file holds 32 raw bytes or 44 characters of base64 (a trailing newline is fine), both giving the same key', async () => {
  const bytes = randomBytes(32);
  const raw = await keyFile('raw', bytes);
  const b64 = await keyFile('b64', `${bytes.toString('base64')}\n`);
  const ring = await loadKeyRing({ keyFile: raw, decryptionKeyFiles: [b64] });
  assert.equal(ring.writeKey?.id, keyIdOf(bytes));
  assert.deepEqual(ring.ids, [keyIdOf(bytes)], 'the same key twice is one key');
  // A raw key may start or end with whitespace bytes; it must not be trimmed.
  const spacey = Buffer.concat([Buffer.from(' \n'), randomBytes(28), Buffer.from('\n\t')]);
  assert.equal(parseKeyFile(spacey, 'x').id, keyIdOf(spacey));
});

test('a wrong key file is a ConfigError naming the field, the flag and both accepted forms, never the content', async () => {
  const secret = randomBytes(32).toString('base64');
  const cases: [string, string | Buffer, RegExp][] = [
    [
      'short-raw',
      randomBytes(31),
      /holds 31 bytes; expected a 256-bit key as exactly 32 raw bytes or 44 characters of base64/,
    ],
    ['short-b64', secret.slice(0, 43), /holds 43 characters of text; expected/],
    ['hex', randomBytes(32).toString('hex'), /holds 64 characters of text; expected/],
    ['not-b64', `${secret.slice(0, 40)}!!!=`, /holds 44 bytes; expected/],
    ['zeros', Buffer.alloc(32), /32 zero bytes, which is no key/],
    ['b64-zeros', Buffer.alloc(32).toString('base64'), /32 zero bytes, which is no key/],
  ];
  for (const [name, content, message] of cases) {
    const file = await keyFile(name, content);
    await assert.rejects(loadKeyRing({ keyFile: file, decryptionKeyFiles: [] }), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.message, message, name);
      assert.match(
        err.message,
        /^encryption\.keyFile \(flag --encryption-key-file, env ETCD_AUTOBACKUP_ENCRYPTION_KEY_FILE\): key file /,
      );
      assert.match(err.message, /head -c 32 \/dev\/urandom \| base64 > key/);
      const text = typeof content === 'string' ? content : content.toString('base64');
      if (text.length > 8)
        assert.ok(!err.message.includes(text.slice(0, 12)), `${name}: the content leaked into the error`);
      return true;
    });
  }
  const good = await keyFile('good', randomBytes(32));
  await assert.rejects(
    loadKeyRing({ keyFile: good, decryptionKeyFiles: [good, join(work.path, 'missing')] }),
    /encryption\.decryptionKeyFiles\[1\] \(flag --decryption-key-files, env ETCD_AUTOBACKUP_DECRYPTION_KEY_FILES\): key file \S+missing does not exist$/,
  );
  const dir = join(work.path, 'secret-volume');
  await mkdir(dir);
  await assert.rejects(
    loadKeyRing({ keyFile: dir, decryptionKeyFiles: [] }),
    /is a directory; point at the file inside it/,
  );
  // Reading stops after a few hundred bytes, so a device or a huge file is refused, not slurped.
  await assert.rejects(loadKeyRing({ keyFile: '/dev/zero', decryptionKeyFiles: [] }), /holds 257 bytes; expected/);
});

test('no key configured: an empty ring; the key bytes never show in inspect, JSON or the config', async () => {
  assert.deepEqual((await loadKeyRing(undefined)).ids, []);
  assert.deepEqual((await loadKeyRing({ decryptionKeyFiles: [] })).ids, []);
  const bytes = randomBytes(32);
  const key = new MasterKey(bytes);
  for (const shown of [
    inspect(key, { showHidden: true, depth: 5 }),
    JSON.stringify({ key }),
    format('%o %j', key, key),
  ]) {
    assert.ok(!shown.includes(bytes.toString('hex')) && !shown.includes(bytes.toString('base64')), shown);
  }
  assert.equal(JSON.stringify({ key }), `{"key":{"keyId":"${key.id}"}}`);
  const file = await keyFile('cfg', bytes.toString('base64'));
  const config = loadConfig({
    env: { ETCD_AUTOBACKUP_DECRYPTION_KEY_FILES: `${file},/a,/b` },
    flags: { 'encryption-key-file': file },
  });
  assert.deepEqual(config.encryption, {
    keyFile: file,
    decryptionKeyFiles: [file, '/a', '/b'],
    recipients: [],
    identityFiles: [],
  });
  assert.deepEqual(loadConfig({ env: {} }).encryption, { decryptionKeyFiles: [], recipients: [], identityFiles: [] });
});
