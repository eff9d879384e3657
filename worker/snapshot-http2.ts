/**
 * etcd's Maintenance.Snapshot read over node:http2 directly, without grpc-js, for takeBackup.
 *
 * Why: a snapshot is one server stream of ~10,000 messages of 32 KiB. grpc-js copies each message
 * into one buffer (Buffer.concat of its DATA frames), protobufjs decodes it into an object (its
 * Long fields turned into strings) and it travels through grpc-js's call layers as an object-mode
 * stream. Reading a 318 MiB snapshot and nothing else took 1.0-1.2 s of CPU that way and
 * 0.6-0.7 s over node:http2 (same etcd, same 4 MiB window): the largest share of our process's
 * CPU after SHA-256 that could go. Here the `blob` field is passed on as slices of the DATA frames
 * it arrived in, never copied, and the two other fields are read in place.
 *
 * Only this call: member choice, status, the auth token, HashKV keep the etcd3 client. TLS (CA,
 * client certificate) and the auth token are the same as the client's (etcdClientOptions); the
 * stream ends only on grpc-status 0 in the trailers and with as many bytes as etcd announced.
 */
import http2 from 'node:http2';
import { Readable } from 'node:stream';
import { IntegrityError } from '../core/errors.js';
import { TRAILER_SIZE } from './sha256-trailer.js';

const SNAPSHOT_PATH = '/etcdserverpb.Maintenance/Snapshot';
/** The request: one gRPC message (not compressed, length 0), an empty SnapshotRequest. */
const EMPTY_REQUEST = Buffer.alloc(5);

/** A gRPC or protobuf framing the parser cannot read: a bug or not etcd, not a network failure. */
export class SnapshotFramingError extends Error {
  override readonly name = 'SnapshotFramingError';
}

const State = {
  /** The 5-byte gRPC message prefix: compressed flag, big-endian length. */
  Prefix: 0,
  /** A protobuf field key (varint). */
  Key: 1,
  /** A varint value (wire type 0). */
  Varint: 2,
  /** The length of a length-delimited field (varint). */
  Length: 3,
  /** The bytes of a field: passed on (blob) or skipped. */
  Bytes: 4,
} as const;
type State = (typeof State)[keyof typeof State];

/**
 * Reads gRPC-framed SnapshotResponse messages (`header = 1`, `remaining_bytes = 2`, `blob = 3`)
 * from chunks split anywhere, and hands on the blob bytes as subarrays of the chunks.
 */
export class SnapshotResponseParser {
  private state: State = State.Prefix;
  private prefix = Buffer.alloc(5);
  private prefixFilled = 0;
  /** Bytes of the current message not read yet. */
  private messageLeft = 0;
  private field = 0;
  private wireType = 0;
  /** The varint being read (key, value or length), and the multiplier of its next 7 bits. */
  private varint = 0;
  private varintScale = 1;
  private bytesLeft = 0;
  private remainingBytes = 0;
  private messageBlob = 0;
  /** Messages read completely. */
  messages = 0;
  /** Blob bytes of all messages so far. */
  received = 0;
  /** What etcd's first message announced: its blob, the rest (`remaining_bytes`) and the trailer. */
  expected: number | undefined;

  constructor(private readonly onExpected?: (total: number) => void) {}

  /** Parses `chunk`; `onBlob` gets each piece of blob bytes, in order. */
  write(chunk: Buffer, onBlob: (bytes: Buffer) => void): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.state === State.Prefix) {
        const n = Math.min(5 - this.prefixFilled, chunk.length - at);
        chunk.copy(this.prefix, this.prefixFilled, at, at + n);
        this.prefixFilled += n;
        at += n;
        if (this.prefixFilled < 5) return;
        this.prefixFilled = 0;
        if (this.prefix[0] !== 0) {
          throw new SnapshotFramingError('etcd sent a compressed gRPC message, which was not asked for');
        }
        this.messageLeft = this.prefix.readUInt32BE(1);
        this.remainingBytes = 0;
        this.messageBlob = 0;
        this.startVarint(State.Key);
        if (this.messageLeft === 0) this.endMessage();
        continue;
      }
      if (this.state === State.Bytes) {
        const n = Math.min(this.bytesLeft, chunk.length - at);
        if (this.field === 3 && this.wireType === 2) {
          onBlob(chunk.subarray(at, at + n));
          this.messageBlob += n;
          this.received += n;
        }
        at += n;
        this.bytesLeft -= n;
        this.messageLeft -= n;
        if (this.bytesLeft === 0) this.endField();
        continue;
      }
      // A varint, one byte at a time: keys and lengths are 1-3 bytes.
      const byte = chunk[at++] as number;
      this.messageLeft -= 1;
      this.varint += (byte & 0x7f) * this.varintScale;
      this.varintScale *= 128;
      if (byte & 0x80) {
        if (this.messageLeft <= 0) throw new SnapshotFramingError('a SnapshotResponse ends inside a varint');
        continue;
      }
      this.endVarint();
    }
  }

  /** Checks the stream ended at a message boundary with every announced byte. */
  end(): void {
    if (this.state !== State.Prefix || this.prefixFilled !== 0) {
      throw new IntegrityError('etcd ended the snapshot stream in the middle of a message');
    }
    if (this.expected === undefined) {
      throw new IntegrityError('etcd ended the snapshot stream without sending any data');
    }
    if (this.received !== this.expected) {
      throw new IntegrityError(
        `snapshot stream ended early: got ${this.received} of ${this.expected} bytes (database plus 32-byte SHA-256 trailer)`,
      );
    }
  }

  private startVarint(next: State): void {
    this.state = next;
    this.varint = 0;
    this.varintScale = 1;
  }

  private endVarint(): void {
    const value = this.varint;
    if (this.state === State.Key) {
      if (this.messageLeft <= 0) throw new SnapshotFramingError('a SnapshotResponse ends after a field key');
      this.field = Math.floor(value / 8);
      this.wireType = value % 8;
      if (this.wireType === 0) this.startVarint(State.Varint);
      else if (this.wireType === 2) this.startVarint(State.Length);
      else if (this.wireType === 1 || this.wireType === 5) this.startBytes(this.wireType === 1 ? 8 : 4);
      else throw new SnapshotFramingError(`a SnapshotResponse field has wire type ${this.wireType}`);
      return;
    }
    if (this.state === State.Varint) {
      if (this.field === 2) this.remainingBytes = value;
      this.endField();
      return;
    }
    this.startBytes(value);
  }

  private startBytes(length: number): void {
    if (length > this.messageLeft) {
      throw new SnapshotFramingError(`a SnapshotResponse field of ${length} bytes overruns its message`);
    }
    this.state = State.Bytes;
    this.bytesLeft = length;
    if (length === 0) this.endField();
  }

  private endField(): void {
    if (this.messageLeft < 0) throw new SnapshotFramingError('a SnapshotResponse field overruns its message');
    if (this.messageLeft === 0) this.endMessage();
    else this.startVarint(State.Key);
  }

  private endMessage(): void {
    this.state = State.Prefix;
    this.messages += 1;
    if (this.expected === undefined) {
      this.expected = this.messageBlob + this.remainingBytes + TRAILER_SIZE;
      this.onExpected?.(this.expected);
    }
  }
}

export interface SnapshotTarget {
  /** The member, `http://host:port` or `https://host:port`. */
  endpoint: string;
  /** For https: the same files the etcd3 client uses (etcdClientOptions). */
  credentials?: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer };
  /** etcd auth token (Auth.Authenticate), sent as the `token` header as etcd3 does. */
  token?: string;
  /** HTTP/2 flow-control window of the stream and the connection, bytes (see etcdClientOptions). */
  window: number;
  /** Gets the total bytes to expect (database plus trailer) once the first message is read. */
  onExpected?: (total: number) => void;
  /** Aborts the connection and the call, before or after they started. */
  signal?: AbortSignal;
}

/**
 * Starts the snapshot; resolves once etcd answered with its response headers, so a member that
 * refuses (TLS, auth) fails here. The stream emits the database bytes and then the trailer.
 */
export function openSnapshotHttp2(target: SnapshotTarget): Promise<Readable> {
  const stream = new Http2SnapshotStream(target);
  return stream.started.then(() => stream);
}

class Http2SnapshotStream extends Readable {
  readonly started: Promise<void>;
  private readonly session: http2.ClientHttp2Session;
  private readonly request: http2.ClientHttp2Stream;
  private readonly parser: SnapshotResponseParser;
  private headerStatus: { code: string; message: string } | undefined;
  private trailers: http2.IncomingHttpHeaders | undefined;
  private ended = false;
  private readonly onAbort: () => void;

  constructor(private readonly target: SnapshotTarget) {
    // Room for about one DATA frame's slices past what the next stage asked for.
    super({ highWaterMark: 256 * 1024 });
    this.parser = new SnapshotResponseParser(target.onExpected);
    const creds = target.credentials;
    this.session = http2.connect(target.endpoint, {
      settings: { initialWindowSize: target.window },
      ...(creds
        ? {
            ca: creds.rootCertificate,
            ...(creds.certChain ? { cert: creds.certChain } : {}),
            ...(creds.privateKey ? { key: creds.privateKey } : {}),
          }
        : {}),
    });
    this.session.once('connect', () => this.session.setLocalWindowSize(target.window));
    this.session.on('error', (err: Error) => this.destroy(err));
    this.request = this.session.request({
      ':method': 'POST',
      ':path': SNAPSHOT_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...(target.token ? { token: target.token } : {}),
    });
    const req = this.request;
    req.end(EMPTY_REQUEST);
    this.started = new Promise((resolve, reject) => {
      req.once('response', (headers) => {
        const failed = this.checkHeaders(headers);
        if (failed) {
          this.destroy(failed);
          reject(failed);
        } else resolve();
      });
      this.once('error', reject);
    });
    // The caller's handlers take over once it started; until then only `started` reports.
    this.started.catch(() => undefined);
    req.on('trailers', (t: http2.IncomingHttpHeaders) => {
      this.trailers = t;
    });
    req.on('data', (chunk: Buffer) => this.onData(chunk));
    req.on('end', () => this.onEnd());
    req.on('error', (err: Error) => this.destroy(err));
    req.on('close', () => {
      if (!this.ended && !this.destroyed) {
        this.destroy(new Error(`etcd closed the snapshot stream (HTTP/2 code ${req.rstCode ?? '?'})`));
      }
    });
    this.onAbort = () => this.destroy(abortError(target.signal?.reason));
    if (target.signal?.aborted) this.onAbort();
    else target.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** An error for a response that is not a gRPC stream, or is a gRPC error without a body. */
  private checkHeaders(headers: http2.IncomingHttpHeaders): Error | undefined {
    const status = Number(headers[':status']);
    if (status !== 200) return new Error(`etcd answered the snapshot call with HTTP ${status}`);
    const type = headers['content-type'];
    if (typeof type !== 'string' || !type.startsWith('application/grpc')) {
      return new Error(`etcd answered the snapshot call with content-type ${type ?? '(none)'}, not gRPC`);
    }
    // Trailers-only: a failed call (auth, not a member) carries its status in the headers.
    const code = headers['grpc-status'];
    if (code !== undefined) {
      this.headerStatus = { code: String(code), message: String(headers['grpc-message'] ?? '') };
      if (this.headerStatus.code !== '0') return grpcError(this.headerStatus.code, this.headerStatus.message);
    }
    return undefined;
  }

  private onData(chunk: Buffer): void {
    if (this.destroyed) return;
    let more = true;
    try {
      this.parser.write(chunk, (blob) => {
        more = this.push(blob) && more;
      });
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    if (!more) this.request.pause();
  }

  private onEnd(): void {
    this.ended = true;
    const code = String(this.trailers?.['grpc-status'] ?? this.headerStatus?.code ?? '');
    const message = String(this.trailers?.['grpc-message'] ?? this.headerStatus?.message ?? '');
    if (code === '') {
      this.destroy(new Error('etcd ended the snapshot stream without a gRPC status'));
      return;
    }
    if (code !== '0') {
      this.destroy(grpcError(code, message));
      return;
    }
    try {
      this.parser.end();
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    this.push(null);
  }

  override _read(): void {
    this.request.resume();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.target.signal?.removeEventListener('abort', this.onAbort);
    // Cancel the call so that etcd stops sending, then drop the connection, which is this call's alone.
    if (!this.request.closed) this.request.close(http2.constants.NGHTTP2_CANCEL);
    this.session.destroy();
    done(err);
  }
}

/** grpc-message is percent-encoded (gRPC over HTTP/2). */
function grpcError(code: string, message: string): Error {
  let text = message;
  try {
    text = decodeURIComponent(message);
  } catch {
    // Not valid percent-encoding: show it as sent.
  }
  return new Error(`etcd: ${text || 'no message'} (gRPC status ${code})`);
}

function abortError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
}
