/**
 * Which encryption a stored object is in, from its first bytes alone: `decrypt` reads objects that
 * were copied out of the store without their manifest (`aws s3 cp`, `oci os object get`).
 */
import { MAGIC } from './format.js';

const AGE_MAGIC = Buffer.from('age-encryption.org/v1\n', 'latin1');
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

/** Enough bytes to tell every format below apart. */
export const DETECT_BYTES = AGE_MAGIC.length;

export type DetectedFormat = 'aes-256-gcm' | 'age' | 'zstd' | 'gzip' | 'unknown';

export function detectFormat(head: Buffer): DetectedFormat {
  const starts = (magic: Buffer): boolean =>
    head.length >= magic.length && head.subarray(0, magic.length).equals(magic);
  if (starts(MAGIC)) return 'aes-256-gcm';
  if (starts(AGE_MAGIC)) return 'age';
  if (starts(ZSTD_MAGIC)) return 'zstd';
  if (starts(GZIP_MAGIC)) return 'gzip';
  return 'unknown';
}

/** Why an object that is not encrypted cannot be decrypted, and what opens it instead. */
export function notEncryptedMessage(what: string, format: Exclude<DetectedFormat, 'aes-256-gcm' | 'age'>): string {
  switch (format) {
    case 'zstd':
      return `${what} is not encrypted: it is zstd-compressed and opens with zstd -d (zstd -d -c FILE > snapshot.db)`;
    case 'gzip':
      return `${what} is not encrypted: it is gzip-compressed and opens with gunzip (gunzip -c FILE > snapshot.db)`;
    case 'unknown':
      return `${what} is neither an etcd-autobackup encrypted object (it would start with EAB-ENC) nor an age file (age-encryption.org/v1): check that it is the stored object, whole`;
  }
}
