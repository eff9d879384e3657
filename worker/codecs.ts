/**
 * The compression codecs, in one table read by backup, verify and restore. A manifest records the
 * codec by name (`compression`) and as a stage (`transforms`); readers pick the decoder from the
 * manifest, never from the object's name, so every object ever written stays readable.
 *
 * zstd runs as Debian's `zstd` binary in a child process (docs/architecture.md, "Compression"):
 * it streams, compresses on several cores (`-T`), and keeps its buffers out of Node's heap. Node's
 * own zlib has zstd only from 22.15, single-threaded; @mongodb-js/zstd is buffer-only (a whole
 * snapshot in memory), so neither fits a bounded-memory stream.
 *
 * gzip levels 1-3 run as ISA-L's `igzip` (Debian `isal`), levels 4-9 as zlib blocks on libuv's
 * thread pool (ParallelGzip). On etcd data igzip at level N stores less than zlib at the same
 * level in a quarter to a third of the CPU (docs/architecture.md, "Compression"), but it has no
 * level above 3, so a level zlib alone reaches stays with zlib. Reading needs neither: Node's
 * gunzip reads both, so restore works where igzip is not installed.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { Duplex } from 'node:stream';
import type { Readable, Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { COMPRESSION_LEVELS, COMPRESSIONS } from '../core/config/schema.js';
import { ParallelGzip } from './parallel-gzip.js';

export const CODEC_NAMES = COMPRESSIONS;
export type CodecName = (typeof CODEC_NAMES)[number];

export interface Codec {
  name: CodecName;
  /** Appended to `.db` in the object key. */
  extension: '' | '.gz' | '.zst';
  /** The stage name recorded in the manifest's `transforms`; none records no stage. */
  transform: string | undefined;
  levels: { readonly min: number; readonly max: number; readonly default: number };
  /** Undefined for none: no stage at all, not a pass-through. */
  compress: ((level: number) => Duplex) | undefined;
  decompress: (() => Duplex) | undefined;
  /**
   * When set, readers use it instead of `decompress` to write a file: a stage that writes the
   * decompressed bytes to `dest` (which must not exist) itself and passes nothing on, so that
   * they never cross into Node. Undefined: `decompress`, then Node writes the file.
   */
  decompressTo?: (dest: string) => Duplex;
}

/** The zstd binary; overridable for tests and unusual installs. */
export const ZSTD_BINARY = process.env.ETCD_AUTOBACKUP_ZSTD ?? 'zstd';
/** ISA-L's gzip binary, for gzip levels up to IGZIP_MAX_LEVEL; overridable like ZSTD_BINARY. */
export const IGZIP_BINARY = process.env.ETCD_AUTOBACKUP_IGZIP ?? 'igzip';
/** igzip's highest level; gzip levels above it are zlib's. */
export const IGZIP_MAX_LEVEL = 3;

/** The gzip compressor of a level: igzip up to its highest level, zlib blocks above. */
export function gzipCompressor(level: number, igzip: string = IGZIP_BINARY): Duplex {
  if (level > IGZIP_MAX_LEVEL) return new ParallelGzip({ level });
  // -n: no name or time in the header, so the same snapshot gives the same bytes.
  return new ChildStream(igzip, ['-q', '-c', '-n', `-${level}`], 'igzip', 'isal');
}

export const CODECS: Readonly<Record<CodecName, Codec>> = {
  none: {
    name: 'none',
    extension: '',
    transform: undefined,
    levels: COMPRESSION_LEVELS.none,
    compress: undefined,
    decompress: undefined,
  },
  gzip: {
    name: 'gzip',
    extension: '.gz',
    transform: 'gzip',
    levels: COMPRESSION_LEVELS.gzip,
    compress: (level) => gzipCompressor(level),
    // Node's gunzip reads concatenated members (ParallelGzip's) and single ones (igzip's, and
    // objects written before either) alike.
    decompress: () => createGunzip(),
  },
  zstd: {
    name: 'zstd',
    extension: '.zst',
    transform: 'zstd',
    levels: COMPRESSION_LEVELS.zstd,
    // -T0: one thread per core; --no-progress and -q keep stderr for errors only.
    compress: (level) =>
      new ChildStream(ZSTD_BINARY, ['-q', '-c', `-${level}`, '-T0', '--no-progress'], 'zstd', 'zstd'),
    decompress: () => new ChildStream(ZSTD_BINARY, ['-q', '-d', '-c', '--no-progress'], 'zstd -d', 'zstd'),
    // zstd writes the file: piping 318 MiB out of zstd and into a file through Node was most of a
    // restore's download.
    decompressTo: (dest) => new ChildStream(ZSTD_BINARY, ['-q', '-d', '--no-progress', '-o', dest], 'zstd -d', 'zstd'),
  },
};

/** The codec of a manifest's `compression`. */
export function codecOf(name: CodecName): Codec {
  return CODECS[name];
}

/** The level used: the configured one, or the codec's default. */
export function levelFor(codec: Codec, configured: number | undefined): number {
  return configured ?? codec.levels.default;
}

/** Stage names of every codec, for the reader's list of what it can undo. */
export const CODEC_TRANSFORMS: readonly string[] = Object.values(CODECS).flatMap((c) =>
  c.transform ? [c.transform] : [],
);

/**
 * A child process as one Duplex: writes go to its stdin, its stdout is read. It ends only when
 * the process exited 0, and fails with the process's own stderr otherwise, so a corrupt input is
 * an error of this stage, not a short output.
 */
export class ChildStream extends Duplex {
  private readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  private stderr = '';
  private stdoutEnded = false;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    command: string,
    args: string[],
    private readonly label: string,
    /** The Debian package that installs `command`, named when it is missing. */
    debianPackage: string,
  ) {
    // Room for a few pipe reads each way: with the 16 KiB default, stdout is paused and resumed
    // on every 64 KiB read, which halved zstd's throughput.
    super({ readableHighWaterMark: 1024 * 1024, writableHighWaterMark: 1024 * 1024 });
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const child = this.child;
    child.on('error', (err: NodeJS.ErrnoException) => {
      this.destroy(
        err.code === 'ENOENT'
          ? new Error(`cannot run ${command}: not found; install it (Debian: apt-get install ${debianPackage})`)
          : err,
      );
    });
    // EPIPE when the process died early: its exit status tells why, reported below.
    child.stdin.on('error', () => undefined);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      if (this.stderr.length < 4000) this.stderr += s;
    });
    child.stdout.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) child.stdout.pause();
    });
    child.stdout.on('end', () => {
      this.stdoutEnded = true;
      this.settle();
    });
    child.on('close', (code, signal) => {
      this.exit = { code, signal };
      this.settle();
    });
  }

  private settle(): void {
    if (!this.exit || !this.stdoutEnded || this.destroyed) return;
    const { code, signal } = this.exit;
    if (code === 0) {
      this.push(null);
      return;
    }
    const said = this.stderr.trim().split('\n').slice(-2).join(' | ');
    this.destroy(new Error(`${this.label} failed (${signal ?? `exit code ${code}`})${said ? `: ${said}` : ''}`));
  }

  override _read(): void {
    this.child.stdout.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    if (this.child.stdin.write(chunk)) done();
    else this.child.stdin.once('drain', () => done());
  }

  override _final(done: (err?: Error | null) => void): void {
    this.child.stdin.end();
    done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (this.exit === undefined) this.child.kill('SIGKILL');
    done(err);
  }
}
