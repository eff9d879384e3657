import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { IntegrityError } from '../../core/errors.js';
import { DecryptStream, UnknownKeyError } from '../../worker/crypto/decrypt.js';
import { EncryptStream } from '../../worker/crypto/encrypt.js';
import {
  encryptedSize,
  FRAME_HEADER_BYTES,
  HEADER_BYTES,
  keyIdOf,
  MAGIC,
  TAG_BYTES,
} from '../../worker/crypto/format.js';
import { KeyRing, MasterKey } from '../../worker/crypto/keys.js';

const keyA = new MasterKey(randomBytes(32));
const keyB = new MasterKey(randomBytes(32));
const ring = new KeyRing(keyA);

/** `data` fed in pieces of the given sizes (cycled), so chunk boundaries fall everywhere. */
function pieces(data: Buffer, sizes: number[] = [data.length || 1]): Readable {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length] as number;
    out.push(data.subarray(at, at + n));
    at += n;
  }
  return Readable.from(out, { objectMode: false });
}

async function collect(source: Readable, ...stages: NodeJS.ReadWriteStream[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      done();
    },
  });
  await pipeline([source, ...stages, sink]);
  return Buffer.concat(chunks);
}

async function encrypt(data: Buffer, chunkBytes: number, key = keyA, sizes?: number[]): Promise<Buffer> {
  return collect(pieces(data, sizes), new EncryptStream(key, { chunkBytes }));
}

async function decrypt(sealed: Buffer, keys = ring, sizes?: number[], expectKeyId?: string): Promise<Buffer> {
  return collect(pieces(sealed, sizes), new DecryptStream(keys, expectKeyId ? { expectKeyId } : {}));
}

/** Offsets of each chunk frame in an object written with `chunkBytes`. */
function frames(sealed: Buffer, chunkBytes: number): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (let at = HEADER_BYTES; at < sealed.length;) {
    const n = sealed.readUInt32BE(at + 1);
    assert.ok(n <= chunkBytes);
    const end = at + FRAME_HEADER_BYTES + n + TAG_BYTES;
    out.push({ start: at, end });
    at = end;
  }
  return out;
}

test('round trip at every size around the chunk boundaries, fed in odd pieces both ways', async () => {
  const chunk = 64;
  for (const size of [0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, 3 * chunk + 17]) {
    const data = randomBytes(size);
    const sealed = await encrypt(data, chunk, keyA, [7, 100, 1]);
    assert.equal(sealed.length, encryptedSize(size, chunk), `size of ${size}`);
    assert.deepEqual(await decrypt(sealed, ring, [1, 13, 200]), data, `round trip of ${size}`);
    assert.deepEqual(await decrypt(sealed), data, `round trip of ${size} in one piece`);
  }
});

test('the header holds magic, version, algorithm, chunk size and key id; the same plaintext never encrypts alike', async () => {
  const data = Buffer.from('the same plaintext, twice');
  const one = await encrypt(data, 1024);
  const two = await encrypt(data, 1024);
  assert.deepEqual(one.subarray(0, 8), MAGIC);
  assert.equal(one[8], 1, 'version');
  assert.equal(one[9], 1, 'algorithm');
  assert.equal(one.readUInt32BE(10), 1024, 'chunk size');
  assert.equal(one.subarray(14, 22).toString('hex'), keyA.id);
  assert.notDeepEqual(one.subarray(22, 54), two.subarray(22, 54), 'fresh salt per object');
  assert.notDeepEqual(one.subarray(HEADER_BYTES), two.subarray(HEADER_BYTES), 'different ciphertext');
  assert.equal(one.indexOf(data), -1, 'no plaintext in the output');
  assert.equal(one[HEADER_BYTES], 1, 'a single chunk is the final one');
});

test('key id: 16 hex chars, stable for a key, different between keys', () => {
  const knownBytes = randomBytes(32);
  const k = new MasterKey(knownBytes);
  assert.match(k.id, /^[0-9a-f]{16}$/);
  assert.equal(k.id, keyIdOf(knownBytes));
  assert.equal(new MasterKey(Buffer.from(knownBytes)).id, k.id);
  assert.notEqual(keyA.id, keyB.id);
});

test('every single flipped bit, anywhere in the object, fails decryption', async () => {
  const data = randomBytes(3 * 32 + 5);
  const sealed = await encrypt(data, 32);
  for (let i = 0; i < sealed.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const bad = Buffer.from(sealed);
      bad[i] = (bad[i] as number) ^ (1 << bit);
      await assert.rejects(
        decrypt(bad),
        (err: unknown) => {
          assert.ok(
            err instanceof IntegrityError || err instanceof UnknownKeyError,
            `byte ${i} bit ${bit}: ${String(err)}`,
          );
          return true;
        },
        `flip of bit ${bit} at byte ${i} went unnoticed`,
      );
    }
  }
});

test('reordered, dropped, duplicated chunks and chunks cut off at a boundary all fail, naming why', async () => {
  const chunk = 32;
  const sealed = await encrypt(randomBytes(4 * chunk + 3), chunk);
  const f = frames(sealed, chunk);
  assert.equal(f.length, 5);
  const header = sealed.subarray(0, HEADER_BYTES);
  const part = (i: number) => sealed.subarray(f[i]!.start, f[i]!.end);

  const swapped = Buffer.concat([header, part(0), part(2), part(1), part(3), part(4)]);
  await assert.rejects(decrypt(swapped), /chunk 1 \(byte \d+\) fails authentication/);
  const dropped = Buffer.concat([header, part(0), part(2), part(3), part(4)]);
  await assert.rejects(decrypt(dropped), /chunk 1 \(byte \d+\) fails authentication/);
  const duplicated = Buffer.concat([header, part(0), part(0), part(1), part(2), part(3), part(4)]);
  await assert.rejects(decrypt(duplicated), /chunk 1 .* fails authentication/);
  // Cut exactly after a whole chunk: every chunk authenticates, only the missing final flag tells.
  for (let kept = 0; kept < 5; kept++) {
    const cut = sealed.subarray(0, f[kept]!.start);
    await assert.rejects(
      decrypt(cut),
      kept === 0
        ? /ends right after the header, before any chunk: the object is truncated/
        : new RegExp(`ends after chunk ${kept - 1} without the final-chunk marker: the object is truncated`),
      `cut before chunk ${kept}`,
    );
  }
  // A final chunk moved up: the flag is authenticated with the index.
  const finalEarly = Buffer.concat([header, part(0), part(4)]);
  await assert.rejects(decrypt(finalEarly), /chunk 1 .* (fails authentication|is not the last|declares)/);
});

test('truncation at every byte offset fails; appended bytes fail', async () => {
  const sealed = await encrypt(randomBytes(100), 32);
  for (let n = 0; n < sealed.length; n++) {
    await assert.rejects(decrypt(sealed.subarray(0, n)), /truncated|ends inside/, `cut at ${n}`);
  }
  await assert.rejects(decrypt(Buffer.concat([sealed, Buffer.from([0])])), /follow the final chunk.*appended/);
  const again = await encrypt(randomBytes(10), 32);
  await assert.rejects(decrypt(Buffer.concat([sealed, again.subarray(HEADER_BYTES)])), /appended/);
});

test('not-encrypted input and a foreign header are explained', async () => {
  await assert.rejects(decrypt(randomBytes(200)), /wrong magic bytes/);
  await assert.rejects(decrypt(Buffer.alloc(0)), /ends inside the encryption header \(0 of 54 bytes\)/);
  const sealed = await encrypt(randomBytes(10), 32);
  const v2 = Buffer.from(sealed);
  v2[8] = 2;
  await assert.rejects(decrypt(v2), /format version is 2; this version reads 1/);
  const huge = Buffer.from(sealed);
  huge.writeUInt32BE(0xffffffff, 10);
  await assert.rejects(decrypt(huge), /chunk size of 4294967295 bytes, outside/);
});

test('key rotation: any configured key decrypts its own objects; an unknown key id lists the configured ids', async () => {
  const data = randomBytes(300);
  const byA = await encrypt(data, 64, keyA);
  const byB = await encrypt(data, 64, keyB);
  const rotated = new KeyRing(keyB, [keyA]);
  assert.deepEqual(rotated.ids, [keyB.id, keyA.id]);
  assert.deepEqual(await decrypt(byA, rotated), data);
  assert.deepEqual(await decrypt(byB, rotated), data);
  await assert.rejects(decrypt(byB, new KeyRing(keyA)), (err: unknown) => {
    assert.ok(err instanceof UnknownKeyError);
    assert.match(
      err.message,
      new RegExp(`key id ${keyB.id} and the configured keys are ${keyA.id};.*--decryption-key-files`),
    );
    return true;
  });
  await assert.rejects(decrypt(byB, KeyRing.empty), /no key is configured/);
  // The manifest's key id must match the header's: a swapped object is caught even with both keys.
  await assert.rejects(
    decrypt(byB, rotated, undefined, keyA.id),
    new RegExp(`header names key id ${keyB.id} but the manifest says ${keyA.id}`),
  );
  // Same id, other key bytes (a header rewritten to name another key): authentication fails.
  const forged = Buffer.from(byB);
  Buffer.from(keyA.id, 'hex').copy(forged, 14);
  await assert.rejects(decrypt(forged, rotated), /chunk 0 .* fails authentication/);
});

test('memory stays flat: under 1 MiB in flight between source and sink for a 48 MiB stream, and each side holds about a chunk', async () => {
  const chunkBytes = 64 * 1024;
  const piece = 16 * 1024;
  const total = 48 * 1024 * 1024;
  const block = randomBytes(piece);
  // Measured from outside the streams: bytes pulled from the source and not yet at the sink are
  // held somewhere in between (encrypt, decrypt and the stream buffers around them).
  let pulled = 0;
  let maxInFlight = 0;
  const source = Readable.from(
    (function* () {
      for (let sent = 0; sent < total; sent += piece) {
        pulled += piece;
        yield block;
      }
    })(),
    { objectMode: false },
  );
  const enc = new EncryptStream(keyA, { chunkBytes });
  const dec = new DecryptStream(ring);
  let bytes = 0;
  await pipeline(
    source,
    enc,
    dec,
    new Writable({
      write(chunk: Buffer, _e, done) {
        maxInFlight = Math.max(maxInFlight, pulled - bytes);
        bytes += chunk.length;
        done();
      },
    }),
  );
  assert.equal(bytes, total);
  assert.ok(maxInFlight < 1024 * 1024, `${maxInFlight} bytes were in flight at once`);
  assert.ok(enc.peakBuffered <= chunkBytes + piece, `encrypt held ${enc.peakBuffered}`);
  assert.ok(
    dec.peakBuffered <= chunkBytes + FRAME_HEADER_BYTES + TAG_BYTES + chunkBytes + 1024,
    `decrypt held ${dec.peakBuffered}`,
  );
});
