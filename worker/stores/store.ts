/**
 * One small interface for every place snapshots can live. Keys are relative to the store's base
 * prefix (the path of its URL) and use `/` as separator on every provider.
 */
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  /** Key relative to the store's base prefix. */
  key: string;
  /** Size in bytes as stored. */
  size: number;
  /** Last modification time as the provider reports it. */
  modified?: Date;
}

export interface PutOptions {
  /** MIME type, where the provider records one. */
  contentType?: string;
  /** Aborts the upload; nothing becomes visible. */
  signal?: AbortSignal;
}

export interface Store {
  /** The store's URL with any credentials removed, for logs and manifests. */
  readonly location: string;
  /**
   * Writes the whole stream under `key`. Atomic: the object is visible only once it is complete;
   * when the stream errors, the signal aborts or the provider fails, nothing is left visible and
   * the promise rejects. On failure the input stream is destroyed so that its producer stops.
   */
  put(key: string, body: Readable, options?: PutOptions): Promise<{ size: number }>;
  /**
   * Every object under `prefix`. Rejects rather than returning a partial list: retention must
   * never act on an incomplete listing.
   */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** The object's bytes as a stream; rejects with a NotFoundError when there is no such key. */
  get(key: string): Promise<{ body: Readable; size: number }>;
  /** Removes the object; removing a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** Releases connections. */
  close(): Promise<void>;
  /**
   * Providers with multipart uploads: aborts the incomplete uploads under this store's prefix
   * started more than `olderThanMs` ago (left when an abort could not reach the service) and
   * returns how many. Absent where uploads cannot be left behind (the file store).
   */
  abortStaleUploads?(olderThanMs: number): Promise<number>;
  /**
   * Stores whose interrupted writes leave visible leftovers (the file store's temp files, which
   * list() hides): those under `prefix`, as keys that delete() removes. Absent where an
   * interrupted write leaves nothing behind (object stores publish atomically).
   */
  listIncomplete?(prefix: string): Promise<ObjectInfo[]>;
}

export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
  constructor(
    readonly key: string,
    location: string,
  ) {
    super(`no object "${key}" in ${location}`);
  }
}

/** Joins a base prefix and a key the same way on every provider. */
export function joinKey(prefix: string, key: string): string {
  const p = prefix.replace(/^\/+|\/+$/g, '');
  const k = key.replace(/^\/+/, '');
  return p ? `${p}/${k}` : k;
}

/** Rejects keys that could escape the prefix or mean different things on different providers. */
export function assertSafeKey(key: string): void {
  if (
    key === '' ||
    key.startsWith('/') ||
    key.split('/').some((part) => part === '..' || part === '.' || part === '')
  ) {
    throw new Error(`invalid object key "${key}"`);
  }
}

/** A chunk of an upload body as a Buffer, without copying where it already is one. */
export function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk);
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`the data to upload must be bytes or text, got ${typeof chunk}`);
}
