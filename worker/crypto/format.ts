/**
 * The encrypted stream format (docs/encryption.md is the spec with the byte layout). One header,
 * then the plaintext in chunks, each sealed with AES-256-GCM under a key derived for this object
 * alone. The additional data of every chunk binds the whole header, the chunk's index and whether
 * it is the last one, so that a changed, reordered, dropped, appended or cut-off chunk (even cut
 * exactly at a chunk boundary) fails authentication or the final-chunk check.
 *
 *   header  magic "EAB-ENC\0" (8) | version (1) | algorithm (1) | chunk size (4, BE) | key id (8) | salt (32)
 *   chunk   flags (1: 0 = more follow, 1 = final) | plaintext length n (4, BE) | ciphertext (n) | tag (16)
 */
import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import { IntegrityError } from '../../core/errors.js';

export const MAGIC = Buffer.from('EAB-ENC\0', 'latin1');
export const FORMAT_VERSION = 1;
/** AES-256-GCM per chunk with a per-object key from HKDF-SHA256. */
export const ALGORITHM_AES256GCM_HKDF = 1;
/** Recorded in the manifest: what the object's encryption is, in words. */
export const ENCRYPTION_FORMAT = 'etcd-autobackup-enc/1';
export const ENCRYPTION_ALGORITHM = 'AES-256-GCM, HKDF-SHA256 per-object key';
/** The transform name backup.ts records in the manifest's `transforms`. */
export const ENCRYPT_TRANSFORM = 'encrypt-aes-256-gcm';

export const KEY_BYTES = 32;
export const KEY_ID_BYTES = 8;
export const SALT_BYTES = 32;
export const TAG_BYTES = 16;
export const NONCE_BYTES = 12;
export const HEADER_BYTES = MAGIC.length + 1 + 1 + 4 + KEY_ID_BYTES + SALT_BYTES;
export const FRAME_HEADER_BYTES = 1 + 4;

export const FLAG_MORE = 0;
export const FLAG_FINAL = 1;

/** What the writer uses: small enough for flat memory, large enough that the 21 bytes per chunk vanish. */
export const DEFAULT_CHUNK_BYTES = 64 * 1024;
/** The largest chunk a reader accepts, which bounds what it buffers whatever a header claims. */
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;

const HKDF_INFO = Buffer.from('etcd-autobackup enc v1 object key', 'latin1');
const KEY_ID_LABEL = Buffer.from('etcd-autobackup key id:', 'latin1');

/** A stored object that is not a readable encrypted stream, or was altered. */
export class DecryptionError extends IntegrityError {}

export interface Header {
  chunkBytes: number;
  /** Hex, as in the manifest. */
  keyId: string;
  salt: Buffer;
  /** The header as written, for the additional data of every chunk. */
  raw: Buffer;
}

/**
 * The public name of a key: 8 bytes of a labelled SHA-256 of it, in hex. Enough to pick the right
 * key among a few; it says nothing usable about a random 256-bit key.
 */
export function keyIdOf(key: Buffer): string {
  return createHash('sha256').update(KEY_ID_LABEL).update(key).digest().subarray(0, KEY_ID_BYTES).toString('hex');
}

/** A random salt makes every object's key, and so every nonce sequence, its own. */
export function newHeader(keyId: string, chunkBytes: number, salt: Buffer = randomBytes(SALT_BYTES)): Header {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) {
    throw new RangeError(`chunk size ${chunkBytes} outside 1..${MAX_CHUNK_BYTES}`);
  }
  const raw = Buffer.alloc(HEADER_BYTES);
  let at = MAGIC.copy(raw, 0);
  at = raw.writeUInt8(FORMAT_VERSION, at);
  at = raw.writeUInt8(ALGORITHM_AES256GCM_HKDF, at);
  at = raw.writeUInt32BE(chunkBytes, at);
  at += Buffer.from(keyId, 'hex').copy(raw, at);
  salt.copy(raw, at);
  return { chunkBytes, keyId, salt, raw };
}

/** Reads a header; `raw` must be exactly HEADER_BYTES long. */
export function parseHeader(raw: Buffer): Header {
  if (!raw.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new DecryptionError(
      'it does not start with the etcd-autobackup encryption header (wrong magic bytes): it is not encrypted by etcd-autobackup or its start was altered',
    );
  }
  let at = MAGIC.length;
  const version = raw.readUInt8(at++);
  if (version !== FORMAT_VERSION) {
    throw new DecryptionError(
      `its encryption format version is ${version}; this version reads ${FORMAT_VERSION} only (a newer etcd-autobackup may read it, or the header was altered)`,
    );
  }
  const algorithm = raw.readUInt8(at++);
  if (algorithm !== ALGORITHM_AES256GCM_HKDF) {
    throw new DecryptionError(
      `its header names encryption algorithm ${algorithm}; this version knows ${ALGORITHM_AES256GCM_HKDF} (AES-256-GCM) only`,
    );
  }
  const chunkBytes = raw.readUInt32BE(at);
  at += 4;
  if (chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) {
    throw new DecryptionError(
      `its header declares a chunk size of ${chunkBytes} bytes, outside 1..${MAX_CHUNK_BYTES}: the header was altered`,
    );
  }
  const keyId = raw.subarray(at, at + KEY_ID_BYTES).toString('hex');
  at += KEY_ID_BYTES;
  const salt = Buffer.from(raw.subarray(at, at + SALT_BYTES));
  return { chunkBytes, keyId, salt, raw: Buffer.from(raw) };
}

/** The per-object AES key: HKDF-SHA256 of the master key with the header's salt. */
export function objectKey(master: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', master, salt, HKDF_INFO, KEY_BYTES));
}

/** Chunk `index`'s nonce: the counter, big-endian, in the last 8 of 12 bytes. Unique because the key is. */
export function nonceFor(index: bigint): Buffer {
  const nonce = Buffer.alloc(NONCE_BYTES);
  nonce.writeBigUInt64BE(index, NONCE_BYTES - 8);
  return nonce;
}

/** Additional data of chunk `index`: header, index and flags, so none can be changed alone. */
export function aadFor(header: Header, index: bigint, flags: number): Buffer {
  const aad = Buffer.alloc(header.raw.length + 8 + 1);
  header.raw.copy(aad, 0);
  aad.writeBigUInt64BE(index, header.raw.length);
  aad.writeUInt8(flags, header.raw.length + 8);
  return aad;
}

/** Size of the encrypted form of `plainBytes` bytes, for tests and estimates. */
export function encryptedSize(plainBytes: number, chunkBytes = DEFAULT_CHUNK_BYTES): number {
  const chunks = Math.max(1, Math.ceil(plainBytes / chunkBytes));
  return HEADER_BYTES + chunks * (FRAME_HEADER_BYTES + TAG_BYTES) + plainBytes;
}
