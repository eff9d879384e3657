/**
 * `etcd-autobackup decrypt [FILE]`: a stored encrypted object to its plaintext (still compressed),
 * for a person who copied it out of the store with the store's own tools. Only authenticated chunks
 * are written, and the command fails when the object was cut short or altered; with --output the
 * file appears only once the whole object decrypted.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { access, link, open, unlink } from 'node:fs/promises';
import { Readable, type Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { ConfigError, IntegrityError } from '../../core/errors.js';
import { AgeDecryptStream, loadIdentities } from '../../worker/crypto/age.js';
import { DecryptStream } from '../../worker/crypto/decrypt.js';
import { detectFormat, DETECT_BYTES, notEncryptedMessage } from '../../worker/crypto/detect.js';
import { loadKeyRing } from '../../worker/crypto/keys.js';
import { setup, withConfigOptions, type CliContext } from '../options.js';

export function registerDecrypt(program: Command, context: CliContext): void {
  withConfigOptions(
    program
      .command('decrypt')
      .description(
        'decrypt a stored object (AES-256-GCM with --encryption-key-file/--decryption-key-files, age with --identity) to stdout; the output is still compressed: pipe it into zstd -d or gunzip',
      )
      .argument('[file]', 'the stored object as copied out of the store; stdin when absent or -')
      .option(
        '-o, --output <file>',
        'write here instead of stdout; the file appears only when the whole object decrypted',
      ),
  ).action(async (file: string | undefined, opts: { output?: string }, cmd: Command) => {
    const { config, log } = setup(cmd);
    const what = file && file !== '-' ? file : 'stdin';
    if (!opts.output && process.stdout.isTTY) {
      throw new ConfigError('decrypt writes binary data: pipe it (| zstd -d > snapshot.db) or give --output FILE');
    }
    if (opts.output && (await exists(opts.output))) {
      throw new ConfigError(`--output ${opts.output} already exists; remove it or choose another file`);
    }
    const input = what === 'stdin' ? process.stdin : createReadStream(what);
    const source = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const head = await readHead(source, what);
    const format = detectFormat(head.bytes);
    let stage: Transform;
    if (format === 'aes-256-gcm') {
      stage = new DecryptStream(await loadKeyRing(config.encryption));
    } else if (format === 'age') {
      const identities = await loadIdentities(config.encryption.identityFiles);
      if (!identities)
        throw new ConfigError(`${what} is an age file: give the identity that decrypts it with --identity FILE`);
      stage = new AgeDecryptStream(identities);
    } else {
      throw new IntegrityError(notEncryptedMessage(what, format));
    }
    log.info({ object: what, format, output: opts.output ?? 'stdout' }, 'decrypting');
    const bytes = Readable.from(replay(head, source), { objectMode: false });
    try {
      if (opts.output) await toFile(bytes, stage, opts.output, context.signal);
      else await pipeline(bytes, stage, process.stdout as Writable, { signal: context.signal });
    } catch (err) {
      throw err instanceof IntegrityError ? new IntegrityError(`${what} cannot be decrypted: ${err.message}`) : err;
    }
  });
}

async function readHead(source: AsyncIterator<Buffer>, what: string): Promise<{ bytes: Buffer; ended: boolean }> {
  const parts: Buffer[] = [];
  let length = 0;
  try {
    while (length < DETECT_BYTES) {
      const next = await source.next();
      if (next.done) return { bytes: Buffer.concat(parts), ended: true };
      parts.push(next.value);
      length += next.value.length;
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`${what} does not exist`);
    throw err;
  }
  return { bytes: Buffer.concat(parts), ended: false };
}

async function* replay(head: { bytes: Buffer; ended: boolean }, source: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  yield head.bytes;
  if (head.ended) return;
  for (;;) {
    const next = await source.next();
    if (next.done) return;
    yield next.value;
  }
}

/** Writes beside the target and links it into place at the end, so that a failure leaves no file and nothing is overwritten. */
async function toFile(bytes: Readable, stage: Transform, output: string, signal: AbortSignal): Promise<void> {
  const partial = `${output}.partial-${process.pid}`;
  try {
    // A FileHandle's stream keeps the handle referenced until the stream closes, so the stream owns
    // its descriptor here and fsync runs on a second one, which flushes the same file.
    await pipeline(bytes, stage, createWriteStream(partial, { flags: 'wx', mode: 0o600 }), { signal });
    const handle = await open(partial, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await link(partial, output).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'EEXIST'
        ? new ConfigError(`--output ${output} already exists; remove it or choose another file`)
        : err;
    });
  } finally {
    await unlink(partial).catch(() => undefined);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
