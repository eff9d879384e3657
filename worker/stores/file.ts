/**
 * A local directory: the embedded default, and a good fit for a PVC or an NFS mount.
 * Atomic publish is write-to-temp, fsync, rename, fsync the directory: after a crash a reader
 * finds either the whole object or none (temp files are ignored by list and swept by retention).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { assertSafeKey, NotFoundError, type ObjectInfo, type PutOptions, type Store } from './store.js';

const TEMP_MARK = '.partial-';

export class FileStore implements Store {
  readonly location: string;

  constructor(private readonly root: string) {
    this.location = `file://${root}`;
  }

  private path(key: string): string {
    assertSafeKey(key);
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<{ size: number }> {
    const target = this.path(key);
    await mkdir(dirname(target), { recursive: true });
    const temp = `${target}${TEMP_MARK}${randomBytes(4).toString('hex')}`;
    try {
      const out = createWriteStream(temp, { flags: 'wx' });
      await pipeline(body, out, options.signal ? { signal: options.signal } : {});
      await fsyncPath(temp);
      const { size } = await stat(temp);
      await rename(temp, target);
      await fsyncPath(dirname(target));
      return { size };
    } catch (err) {
      body.destroy(err instanceof Error ? err : new Error(String(err)));
      await rm(temp, { force: true });
      throw err;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const start = prefix ? this.path(prefix.replace(/\/+$/, '')) : this.root;
    const out: ObjectInfo[] = [];
    await walk(start, async (file) => {
      if (file.includes(TEMP_MARK)) return;
      const s = await stat(file);
      out.push({ key: relative(this.root, file).split(sep).join('/'), size: s.size, modified: s.mtime });
    });
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  async get(key: string): Promise<{ body: Readable; size: number }> {
    const file = this.path(key);
    try {
      const s = await stat(file);
      return { body: createReadStream(file, { highWaterMark: 256 * 1024 }), size: s.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(key, this.location);
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  async close(): Promise<void> {}
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function walk(dir: string, visit: (file: string) => Promise<void>): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    // A prefix nobody has written to yet is an empty listing, not a failure.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const entry of entries) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) await walk(full, visit);
    else if (entry.isFile()) await visit(full);
  }
}
