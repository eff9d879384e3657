/**
 * A worker pool in its own process, for the crash test: its store writes the first bytes of the
 * upload, says so on stdout, then hangs until the parent SIGKILLs the process.
 */
import { PassThrough, type Readable } from 'node:stream';
import { configSchema } from '../../core/config/index.js';
import { createLogger } from '../../core/logger.js';
import { startWorkerPool } from '../../worker/pool.js';
import { FileStore } from '../../worker/stores/file.js';
import type { PutOptions } from '../../worker/stores/store.js';

const config = configSchema.parse(JSON.parse(process.env.POOL_CONFIG ?? '{}'));
const inner = new FileStore(process.env.POOL_STORE_DIR ?? '');

class HangingStore extends FileStore {
  override put(key: string, body: Readable, options?: PutOptions): Promise<{ size: number }> {
    if (key.endsWith('.manifest.json')) return inner.put(key, body, options);
    const slow = new PassThrough();
    let first = true;
    body.on('data', (chunk: Buffer) => {
      if (!first) return;
      first = false;
      slow.write(chunk);
      body.pause();
      process.stdout.write('uploading\n');
    });
    return inner.put(key, slow, options);
  }
}

await startWorkerPool({
  config,
  store: new HangingStore(process.env.POOL_STORE_DIR ?? ''),
  log: createLogger({ level: 'fatal' }),
  lockDurationMs: Number(process.env.POOL_LOCK_MS ?? 2_000),
  stalledIntervalMs: 500,
});
process.stdout.write('ready\n');
