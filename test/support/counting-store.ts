/**
 * A real store that records the keys read through it: for tests of how much a reader reads
 * (e.g. a new delta-log writer reads the newest manifest, not every one).
 */
import type { Readable } from 'node:stream';
import type { ObjectInfo, PutOptions, Store } from '../../worker/stores/store.js';

export class CountingStore implements Store {
  readonly location: string;
  /** Every key passed to get(), in order. */
  readonly gets: string[] = [];
  /** Every prefix passed to list(), in order. */
  readonly lists: string[] = [];

  constructor(private readonly inner: Store) {
    this.location = inner.location;
  }

  put(key: string, body: Readable, options?: PutOptions): Promise<{ size: number }> {
    return this.inner.put(key, body, options);
  }

  list(prefix: string): Promise<ObjectInfo[]> {
    this.lists.push(prefix);
    return this.inner.list(prefix);
  }

  get(key: string): Promise<{ body: Readable; size: number }> {
    this.gets.push(key);
    return this.inner.get(key);
  }

  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
