/**
 * s3rver (a real S3 HTTP server on the local filesystem) in-process on a free loopback port, for
 * the S3 and NCP store tests.
 */
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type * as NodeCrypto from 'node:crypto';
import { tempDir } from './tmp.js';

/**
 * s3rver's built-in account. s3rver 3 checks only that a request names this access key id, not its
 * SigV4 signature: no test here relies on signature checking against S3 (the OCI fake does check).
 */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverInstance;

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as S3rverCtor;

/**
 * s3rver encrypts ListObjectsV2 continuation tokens with single DES, which OpenSSL 3 keeps in its
 * legacy provider only, so V2 paging fails with a 500. Triple DES with three equal keys is the
 * same cipher and is in the default provider: map `des` onto it. Nothing else uses DES.
 */
function shimSingleDes(): void {
  type Cipher = (algorithm: string, key: Buffer, iv: Buffer | null, options?: unknown) => unknown;
  const crypto = require('node:crypto') as typeof NodeCrypto & { s3rverDesShim?: true };
  if (crypto.s3rverDesShim) return;
  crypto.s3rverDesShim = true;
  const wrap =
    (original: Cipher): Cipher =>
    (algorithm, key, iv, options) =>
      algorithm === 'des'
        ? original('des-ede3-cbc', Buffer.concat([key, key, key]), iv, options)
        : original(algorithm, key, iv, options);
  crypto.createCipheriv = wrap(crypto.createCipheriv.bind(crypto) as Cipher) as typeof crypto.createCipheriv;
  crypto.createDecipheriv = wrap(crypto.createDecipheriv.bind(crypto) as Cipher) as typeof crypto.createDecipheriv;
}
shimSingleDes();

export interface S3rverOptions {
  /** Buckets created before the server starts. */
  buckets?: string[];
  /** Serve HTTPS with this PEM key and certificate. */
  tls?: { key: string; cert: string };
  /** Serve an existing directory (e.g. one a halted server left); it is then not removed by stop(). */
  directory?: string;
}

export interface S3rverServer {
  /** `http://127.0.0.1:port` (or https). */
  endpoint: string;
  port: number;
  /** Where s3rver keeps buckets and objects. */
  directory: string;
  /** Stops listening and cuts every open connection, as a server that dies; files stay. */
  halt(): Promise<void>;
  /** halt() and remove the files. */
  stop(): Promise<void>;
}

export async function startS3rver(options: S3rverOptions = {}): Promise<S3rverServer> {
  const dir = options.directory ? { path: options.directory, remove: async () => {} } : await tempDir('s3rver');
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir.path,
    configureBuckets: (options.buckets ?? []).map((name) => ({ name })),
    ...(options.tls ? { key: options.tls.key, cert: options.tls.cert } : {}),
  });
  let address: AddressInfo;
  try {
    address = await server.run();
  } catch (err) {
    await dir.remove();
    throw err;
  }
  let halted: Promise<void> | undefined;
  const halt = () =>
    (halted ??= (async () => {
      const closing = server.close();
      server.httpServer?.closeAllConnections();
      await closing;
    })());
  return {
    endpoint: `${options.tls ? 'https' : 'http'}://127.0.0.1:${address.port}`,
    port: address.port,
    directory: dir.path,
    halt,
    async stop() {
      await halt();
      await dir.remove();
    },
  };
}
