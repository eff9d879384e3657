/**
 * s3rver (an in-process S3 on the local disk) for the s3 variants. s3rver ships no types, so the
 * little of its API used here is typed by hand.
 */
import { createRequire } from 'node:module';
import { freePort } from '../test/support/ports.js';
import { tempDir } from '../test/support/tmp.js';

interface S3rverOptions {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string }[];
}

interface S3rverInstance {
  run(): Promise<unknown>;
  close(): Promise<void>;
}

type S3rverClass = new (options: S3rverOptions) => S3rverInstance;

export interface LocalS3 {
  endpoint: string;
  bucket: string;
  directory: string;
  stop(): Promise<void>;
}

export async function startS3rver(bucket: string): Promise<LocalS3> {
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;
  const dir = await tempDir('s3rver');
  const port = await freePort();
  const server = new S3rver({
    address: '127.0.0.1',
    port,
    silent: true,
    directory: dir.path,
    configureBuckets: [{ name: bucket }],
  });
  try {
    await server.run();
  } catch (err) {
    await dir.remove();
    throw err;
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    directory: dir.path,
    async stop() {
      await server.close().catch(() => undefined);
      await dir.remove();
    },
  };
}
