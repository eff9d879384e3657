/**
 * Encryption keys: read from files (a Kubernetes Secret is mounted as one), checked, and named by
 * their key id. The key bytes stay inside MasterKey; what can be logged or printed is the id.
 */
import { open } from 'node:fs/promises';
import { inspect } from 'node:util';
import type { Config } from '../../core/config/index.js';
import { envName, SETTINGS } from '../../core/config/settings.js';
import { ConfigError, messageOf } from '../../core/errors.js';
import { KEY_BYTES, keyIdOf, objectKey } from './format.js';

// Only the AES-GCM fields: age's live in age.ts, so callers and tests need not name them.
export type EncryptionConfig = Pick<Config['encryption'], 'keyFile' | 'decryptionKeyFiles'>;

/** Base64 of 32 bytes: 43 characters and one `=`. */
const BASE64_KEY_CHARS = 44;
/** More than any key file format needs; stops `--encryption-key-file /dev/urandom` from reading forever. */
const MAX_KEY_FILE_BYTES = 256;
const HOW_TO_MAKE = 'make one with: head -c 32 /dev/urandom | base64 > key';

export class MasterKey {
  readonly id: string;
  readonly #bytes: Buffer;

  constructor(bytes: Buffer) {
    if (bytes.length !== KEY_BYTES) throw new RangeError(`a key is ${KEY_BYTES} bytes, not ${bytes.length}`);
    this.#bytes = Buffer.from(bytes);
    this.id = keyIdOf(this.#bytes);
  }

  /** The AES key of one object, from the salt in its header. */
  objectKey(salt: Buffer): Buffer {
    return objectKey(this.#bytes, salt);
  }

  // Whatever ends up logging a key object prints its id only.
  toJSON(): { keyId: string } {
    return { keyId: this.id };
  }

  [inspect.custom](): string {
    return `MasterKey(${this.id})`;
  }
}

/** One key to write with (or none), and every key that may be read with. */
export class KeyRing {
  readonly #byId = new Map<string, MasterKey>();

  constructor(
    readonly writeKey: MasterKey | undefined,
    readKeys: readonly MasterKey[] = [],
  ) {
    for (const key of writeKey ? [writeKey, ...readKeys] : readKeys) this.#byId.set(key.id, key);
  }

  get(id: string): MasterKey | undefined {
    return this.#byId.get(id);
  }

  /** Ids of every key that can decrypt, the write key's first. */
  get ids(): string[] {
    return [...this.#byId.keys()];
  }

  static readonly empty = new KeyRing(undefined);
}

/**
 * The key a file holds. Two forms, told apart by size alone: exactly 32 raw bytes, or 44
 * characters of base64 (surrounding whitespace such as a trailing newline is ignored).
 */
export function parseKeyFile(content: Buffer, where: string): MasterKey {
  if (content.length === KEY_BYTES) return checked(content, where);
  const text = content.toString('latin1').trim();
  if (text.length === BASE64_KEY_CHARS && /^[A-Za-z0-9+/]{43}=$/.test(text)) {
    const bytes = Buffer.from(text, 'base64');
    if (bytes.length === KEY_BYTES) return checked(bytes, where);
  }
  // The content itself is never echoed: a near-miss key is still mostly a key.
  const described = /^[A-Za-z0-9+/=\s]*$/.test(text) ? `${text.length} characters of text` : `${content.length} bytes`;
  throw new ConfigError(
    `${where} holds ${described}; expected a 256-bit key as exactly 32 raw bytes or 44 characters of base64 (${HOW_TO_MAKE})`,
  );
}

function checked(bytes: Buffer, where: string): MasterKey {
  if (bytes.every((b) => b === 0))
    throw new ConfigError(`${where} holds 32 zero bytes, which is no key; ${HOW_TO_MAKE}`);
  return new MasterKey(bytes);
}

/** Reads one key file; `field` is the config path it came from, for the error. */
export async function readKeyFile(file: string, field: string): Promise<MasterKey> {
  const where = `${field}${flagHint(field)}: key file ${file}`;
  let content: Buffer;
  try {
    const handle = await open(file, 'r');
    try {
      const buffer = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      content = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EISDIR'
          ? 'is a directory; point at the file inside it (a mounted Secret is a directory with one file per key)'
          : code === 'EACCES'
            ? "cannot be read by this user (check its mode and owner, or the Secret volume's defaultMode)"
            : `cannot be read (${messageOf(err)})`;
    throw new ConfigError(`${where} ${why}`);
  }
  return parseKeyFile(content, where);
}

/**
 * The keys the config names: `encryption.keyFile` encrypts new snapshots and also decrypts, each
 * of `encryption.decryptionKeyFiles` only decrypts (older keys kept after a rotation).
 */
export async function loadKeyRing(config: EncryptionConfig | undefined): Promise<KeyRing> {
  if (!config) return KeyRing.empty;
  const writeKey = config.keyFile ? await readKeyFile(config.keyFile, 'encryption.keyFile') : undefined;
  const readKeys: MasterKey[] = [];
  for (const [i, file] of config.decryptionKeyFiles.entries()) {
    readKeys.push(await readKeyFile(file, `encryption.decryptionKeyFiles[${i}]`));
  }
  return new KeyRing(writeKey, readKeys);
}

function flagHint(field: string): string {
  const path = field.replace(/\[\d+\]$/, '');
  const setting = SETTINGS.find((s) => s.path === path);
  return setting ? ` (flag --${setting.flag}, env ${envName(setting.flag)})` : '';
}
