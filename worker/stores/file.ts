/**
 * A local directory: the embedded default, and a good fit for a PVC or an NFS mount.
 * Atomic publish is write-to-temp, fsync, rename, fsync the directory: after a crash a reader
 * finds either the whole object or none (temp files are ignored by list and swept by retention).
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { messageOf } from '../../core/errors.js';
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
    let temp: string | undefined;
    let out: WriteStream | undefined;
    try {
      const target = this.path(key);
      // A snapshot is the whole cluster's data, Secrets included: owner-only, as etcdctl writes it.
      await mkdir(dirname(target), { recursive: true, mode: 0o700 });
      temp = `${target}${TEMP_MARK}${randomBytes(4).toString('hex')}`;
      // A 1 MiB buffer batches the 32 KiB chunks etcd sends into fewer, larger writes.
      out = createWriteStream(temp, { flags: 'wx', mode: 0o600, highWaterMark: 1024 * 1024 });
      await pipeline(body, out, options.signal ? { signal: options.signal } : {});
      await fsyncPath(temp);
      const { size } = await stat(temp);
      await rename(temp, target);
      await fsyncPath(dirname(target));
      return { size };
    } catch (err) {
      // Every failure, the directory or key included, must stop the producer.
      body.destroy(err instanceof Error ? err : new Error(String(err)));
      // The stream may still be opening its file when the input fails first: removing the temp
      // file before that open completes would leave it behind, so wait for the stream to close.
      if (out && !out.closed) await once(out, 'close').catch(() => undefined);
      // A failed clean-up must not hide why the write failed; list ignores temp files anyway.
      if (temp !== undefined) await rm(temp, { force: true }).catch(() => undefined);
      throw new Error(`writing "${key}" to ${this.location} failed: ${messageOf(err)}${hint(err)}`, { cause: err });
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const start = prefix ? this.path(prefix.replace(/\/+$/, '')) : this.root;
    const out: ObjectInfo[] = [];
    await walk(start, async (file) => {
      if (basename(file).includes(TEMP_MARK)) return;
      let s;
      try {
        s = await stat(file);
      } catch (err) {
        // Deleted (e.g. by retention) between readdir and stat: it is simply not there any more.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
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

  /** Temp files of interrupted puts (a crash between write and rename), as keys delete() removes. */
  async listIncomplete(prefix: string): Promise<ObjectInfo[]> {
    const start = prefix ? this.path(prefix.replace(/\/+$/, '')) : this.root;
    const out: ObjectInfo[] = [];
    await walk(start, async (file) => {
      if (!basename(file).includes(TEMP_MARK)) return;
      const s = await stat(file).catch(() => undefined);
      if (s) out.push({ key: relative(this.root, file).split(sep).join('/'), size: s.size, modified: s.mtime });
    });
    return out.sort((a, b) => a.key.localeCompare(b.key));
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

/** What an operator can do about the usual filesystem failures. */
function hint(err: unknown): string {
  switch ((err as NodeJS.ErrnoException | undefined)?.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return '; the volume is full: free space, enlarge the volume or lower retention (nothing was stored)';
    case 'EACCES':
    case 'EPERM':
      return '; the service may not write there: check the directory owner and mode';
    case 'EROFS':
      return '; the volume is mounted read-only';
    default:
      return '';
  }
}
