/**
 * Snapshots as standard age files (age-encryption.org/v1), so that `age -d` can read them without
 * this tool. The header (X25519 stanzas and its MAC) comes from the `age-encryption` package; the
 * payload STREAM uses node:crypto's ChaCha20-Poly1305, which is several times faster than the
 * package's pure-JS cipher and keeps memory flat: one 64 KiB chunk at a time.
 *
 * Payload: key = HKDF-SHA256(ikm = file key, salt = 16-byte nonce, info = "payload"), then chunks
 * of 64 KiB, each sealed with nonce = 11-byte big-endian counter ‖ last-chunk flag (0 or 1).
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes, type Hash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { inspect } from 'node:util';
import { Decrypter, Encrypter, type Recipient, type Stanza } from 'age-encryption';
import { ConfigError, messageOf } from '../../core/errors.js';
import { ByteQueue } from './byte-queue.js';
import { DecryptionError } from './format.js';

/** The transform name the manifest lists. */
export const AGE_TRANSFORM = 'age';
export const AGE_FORMAT = 'age-encryption.org/v1';
/** Appended after the compression suffix: `.db.gz.age`, `.db.age`. */
export const AGE_SUFFIX = '.age';

const CHUNK = 64 * 1024;
const TAG = 16;
const NONCE = 16;
/** Larger than any header with a sane number of recipients; stops a garbage object from being buffered whole. */
const MAX_HEADER_BYTES = 256 * 1024;
/** Bech32 of a 32-byte X25519 key: `age1` and 58 lowercase data characters. */
export const X25519_RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;
const MAX_FILE_BYTES = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Recipients (public) and identities (secret)

/** Parses age's recipients-file format (`age -R`): one per line, `#` comments and blank lines allowed. */
export function parseRecipients(text: string, where: string): string[] {
  const out: string[] = [];
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    out.push(checkRecipient(line, `${where} line ${i + 1}`));
  }
  return out;
}

/** A recipient the library accepts as X25519 (checksum included); `where` names the setting. */
export function checkRecipient(value: string, where: string): string {
  let ok = X25519_RECIPIENT.test(value);
  if (ok) {
    try {
      new Encrypter().addRecipient(value);
    } catch {
      ok = false;
    }
  }
  if (!ok) {
    // A recipient is public, but a short excerpt is enough to find the line.
    throw new ConfigError(
      `${where}: "${value.slice(0, 12)}${value.length > 12 ? '…' : ''}" is not an age X25519 recipient (age1 followed by 58 characters, as age-keygen -y prints)`,
    );
  }
  return value;
}

export interface AgeConfig {
  recipients?: readonly string[] | undefined;
  recipientsFile?: string | undefined;
  identityFiles?: readonly string[] | undefined;
}

/** Every recipient the config names, in order, without duplicates; empty when age is off. */
export async function loadRecipients(config: AgeConfig | undefined): Promise<string[]> {
  const all: string[] = [];
  for (const [i, r] of (config?.recipients ?? []).entries()) all.push(checkRecipient(r, `encryption.recipients[${i}]`));
  if (config?.recipientsFile) {
    const where = `encryption.recipientsFile ${config.recipientsFile}`;
    all.push(...parseRecipients(await readSmall(config.recipientsFile, where), where));
    if (all.length === 0) throw new ConfigError(`${where} lists no recipient`);
  }
  return [...new Set(all)];
}

/** Secret keys from identity files. Only the count and the files' names can be printed. */
export class AgeIdentities {
  readonly #keys: string[];
  constructor(
    keys: readonly string[],
    readonly files: readonly string[],
  ) {
    this.#keys = [...keys];
  }
  get count(): number {
    return this.#keys.length;
  }
  decrypter(): Decrypter {
    const d = new Decrypter();
    for (const k of this.#keys) d.addIdentity(k);
    return d;
  }
  toJSON(): { identityFiles: readonly string[] } {
    return { identityFiles: this.files };
  }
  [inspect.custom](): string {
    return `AgeIdentities(${this.files.join(', ')})`;
  }
}

/** Reads age identity files (as age-keygen writes them); lines are never echoed in errors. */
export async function loadIdentities(files: readonly string[] | undefined): Promise<AgeIdentities | undefined> {
  if (!files || files.length === 0) return undefined;
  const keys: string[] = [];
  for (const [i, file] of files.entries()) {
    const where = `encryption.identityFiles[${i}] (--identity) ${file}`;
    let found = 0;
    for (const [n, raw] of (await readSmall(file, where)).split(/\r?\n/).entries()) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      let ok = line.startsWith('AGE-SECRET-KEY-1');
      if (ok) {
        try {
          new Decrypter().addIdentity(line);
        } catch {
          ok = false;
        }
      }
      if (!ok) throw new ConfigError(`${where} line ${n + 1} is not an age X25519 identity (AGE-SECRET-KEY-1…)`);
      keys.push(line);
      found++;
    }
    if (found === 0) throw new ConfigError(`${where} holds no identity; make one with age-keygen -o key.txt`);
  }
  return new AgeIdentities(keys, files);
}

async function readSmall(file: string, where: string): Promise<string> {
  try {
    const handle = await open(file, 'r');
    try {
      const buffer = Buffer.alloc(MAX_FILE_BYTES);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      return buffer.subarray(0, bytesRead).toString('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`${where} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${messageOf(err)})`}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Header

/**
 * A fresh file key and the age header that wraps it for `recipients`. The package has no API that
 * returns both, so a recipient of our own that adds no stanza sees the file key as the package
 * wraps it; the header is what the package's (empty) output holds before its payload nonce.
 */
export async function newHeader(recipients: readonly string[]): Promise<{ header: Buffer; fileKey: Buffer }> {
  let fileKey: Buffer | undefined;
  const capture: Recipient = {
    wrapFileKey(key: Uint8Array): Stanza[] {
      fileKey = Buffer.from(key);
      return [];
    },
  };
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  e.addRecipient(capture);
  const whole = Buffer.from(await e.encrypt(new Uint8Array(0)));
  // What follows the header: the package's 16-byte nonce and one empty final chunk (its tag).
  const header = whole.subarray(0, whole.length - NONCE - TAG);
  if (!fileKey || !header.toString('latin1').startsWith('age-encryption.org/v1\n')) {
    throw new Error('age-encryption produced an unexpected header');
  }
  return { header: Buffer.from(header), fileKey };
}

function payloadKey(fileKey: Uint8Array, nonce: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32));
}

function chunkNonce(counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  // 11-byte counter: 2^53 chunks of 64 KiB is far beyond any database, so a double holds it exactly.
  n.writeUIntBE(Math.floor(counter / 2 ** 32), 3, 4);
  n.writeUInt32BE(counter % 2 ** 32, 7);
  n[11] = last ? 1 : 0;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Encrypting stage

export class AgeEncryptStream extends Transform {
  /** Most plaintext bytes held at once, to show memory stays flat. */
  peakBuffered = 0;
  private readonly pending = new ByteQueue();
  private readonly key: Buffer;
  private readonly prefix: Buffer;
  private counter = 0;
  private started = false;

  constructor(header: Buffer, fileKey: Buffer, nonce: Buffer = randomBytes(NONCE)) {
    super();
    this.key = payloadKey(fileKey, nonce);
    this.prefix = Buffer.concat([header, nonce]);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.start();
    this.pending.push(chunk);
    this.peakBuffered = Math.max(this.peakBuffered, this.pending.length);
    // Strictly more than a chunk: only then is it certain that this one is not the last.
    while (this.pending.length > CHUNK) this.seal(this.pending.takePieces(CHUNK), false);
    done();
  }

  override _flush(done: TransformCallback): void {
    this.start();
    // age's last chunk may be full; it is empty only when the whole plaintext is.
    this.seal(this.pending.takePieces(this.pending.length), true);
    done();
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.push(this.prefix);
  }

  private seal(plain: Buffer[], last: boolean): void {
    const c = createCipheriv('chacha20-poly1305', this.key, chunkNonce(this.counter++, last), { authTagLength: TAG });
    // The chunk's pieces as they came (the snapshot reader's 16 KiB DATA frames), each pushed as it
    // is encrypted: joining them first, then the ciphertext and tag, allocated the chunk twice more.
    for (const piece of plain) this.push(c.update(piece));
    c.final();
    this.push(c.getAuthTag());
  }
}

export interface AgeEncryptStage {
  stream: AgeEncryptStream;
  transform: typeof AGE_TRANSFORM;
  suffix: typeof AGE_SUFFIX;
  manifest: { format: typeof AGE_FORMAT; recipients: string[] };
}

/** The age stage when recipients are configured; files are read each time, like the AES key file. */
export async function ageEncryptStage(config: AgeConfig | undefined): Promise<AgeEncryptStage | undefined> {
  const recipients = await loadRecipients(config);
  if (recipients.length === 0) return undefined;
  const { header, fileKey } = await newHeader(recipients);
  return {
    stream: new AgeEncryptStream(header, fileKey),
    transform: AGE_TRANSFORM,
    suffix: AGE_SUFFIX,
    manifest: { format: AGE_FORMAT, recipients },
  };
}

// ---------------------------------------------------------------------------------------------
// Decrypting stage

/**
 * Passes on a chunk's plaintext only after its tag verified; fails, saying how, for a wrong
 * identity, a cut, reordered or appended chunk. Holds one sealed chunk and at most the header.
 */
export class AgeDecryptStream extends Transform {
  peakBuffered = 0;
  /** Bytes before the header's end has been seen (bounded by MAX_HEADER_BYTES). */
  private head: Buffer = Buffer.alloc(0);
  private headerBytes = -1;
  private fileKey: Buffer | undefined;
  private readonly pending = new ByteQueue();
  private key: Buffer | undefined;
  private counter = 0;

  constructor(private readonly identities: AgeIdentities) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.step(chunk).then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    try {
      if (this.headerBytes < 0)
        throw new DecryptionError('it ends inside the age header: the object is truncated or not an age file');
      if (!this.key) throw new DecryptionError('it ends inside the payload nonce: the object is truncated');
      this.last();
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  private async step(chunk: Buffer): Promise<void> {
    if (this.headerBytes < 0) {
      this.head = Buffer.concat([this.head, chunk]);
      const end = headerEnd(this.head);
      if (end < 0) {
        if (this.head.length > MAX_HEADER_BYTES)
          throw new DecryptionError(`no age header in the first ${MAX_HEADER_BYTES} bytes: not an age file`);
        return;
      }
      const header = this.head.subarray(0, end);
      this.pending.push(this.head.subarray(end));
      this.head = Buffer.alloc(0);
      this.headerBytes = end;
      this.fileKey = Buffer.from(await this.unwrap(header));
    } else {
      this.pending.push(chunk);
    }
    this.peakBuffered = Math.max(this.peakBuffered, this.pending.length);
    if (!this.key) {
      if (this.pending.length < NONCE) return;
      this.key = payloadKey(this.fileKey as Buffer, this.pending.take(NONCE));
      this.fileKey = undefined;
    }
    // Strictly more than one sealed chunk: only then is it certain that this one is not the last.
    while (this.pending.length > CHUNK + TAG) this.open(this.pending.take(CHUNK + TAG), false);
  }

  private async unwrap(header: Buffer): Promise<Uint8Array> {
    try {
      return await this.identities.decrypter().decryptHeader(header);
    } catch (err) {
      const why = messageOf(err);
      throw new DecryptionError(
        /no identity matched/i.test(why)
          ? `none of the ${this.identities.count} identities in ${this.identities.files.join(', ')} is a recipient of it (wrong identity, or the header was replaced)`
          : `its age header is invalid (${why}): the object was altered or is not an age file`,
      );
    }
  }

  private last(): void {
    const sealed = this.pending.take(this.pending.length);
    if (sealed.length < TAG) {
      throw new DecryptionError(
        sealed.length === 0 && this.counter > 0
          ? `it ends after chunk ${this.counter - 1} without the last-chunk marker: the object is truncated`
          : `it ends inside chunk ${this.counter}: the object is truncated`,
      );
    }
    if (sealed.length === TAG && this.counter > 0)
      throw new DecryptionError(
        `chunk ${this.counter} is an empty last chunk, which age forbids: the object was altered`,
      );
    this.open(sealed, true);
  }

  private open(sealed: Buffer, last: boolean): void {
    const plain = this.tryOpen(sealed, last);
    if (!plain) {
      // Say what happened when the other flag fits: a cut after a full chunk, or bytes appended.
      const other = this.tryOpen(sealed, !last);
      const at = `chunk ${this.counter} (byte ${this.headerBytes + NONCE + this.counter * (CHUNK + TAG)})`;
      throw new DecryptionError(
        other
          ? last
            ? `it ends after ${at} without the last-chunk marker: the object is truncated`
            : `${at} is marked last but more bytes follow: data was appended`
          : `${at} fails authentication: the object was altered, its chunks reordered or cut`,
      );
    }
    this.counter++;
    if (plain.length > 0) this.push(plain);
  }

  private tryOpen(sealed: Buffer, last: boolean): Buffer | undefined {
    const d = createDecipheriv('chacha20-poly1305', this.key as Buffer, chunkNonce(this.counter, last), {
      authTagLength: TAG,
    });
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    const body = d.update(sealed.subarray(0, sealed.length - TAG));
    try {
      d.final();
      return body;
    } catch {
      return undefined;
    }
  }
}

/** Bytes up to and including the newline that ends the header's `--- <mac>` line, or -1. */
export function headerEnd(buf: Buffer): number {
  let from = 0;
  for (;;) {
    const at = buf.indexOf('\n---', from, 'latin1');
    if (at < 0) return -1;
    const nl = buf.indexOf(0x0a, at + 4);
    if (nl < 0) return -1;
    if (buf[at + 4] === 0x20) return nl + 1;
    from = at + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Without an identity: the stored bytes against the manifest

/** Hashes what passes through, to record (backup) or check (verify) the stored bytes' SHA-256. */
export class Sha256Meter extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
  digest(): string {
    return this.hash.digest('hex');
  }
}
