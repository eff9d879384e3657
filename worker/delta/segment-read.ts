/**
 * Reading one delta segment back (segment.ts has the format): the stored object goes through the
 * same stages as a snapshot read by verify and restore (openStoredObject, AES-GCM keys, age
 * identities, the codec table), and the events come out one at a time, so memory is bounded by
 * the longest line, not the segment.
 *
 * Every check the manifest allows is made: the stored bytes' size and SHA-256, the NDJSON body's
 * size and SHA-256, the event count, and that the events run in revision order from the
 * segment's first revision to its last. The hashes are known only at the end of the stream, so a
 * consumer must treat the events as provisional until the generator has finished without an
 * error: replay applies them to a scratch etcd that is thrown away on any failure.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { IntegrityError, messageOf } from '../../core/errors.js';
import { CODEC_TRANSFORMS, codecOf } from '../codecs.js';
import { AGE_TRANSFORM, Sha256Meter, type AgeIdentities } from '../crypto/age.js';
import { ageDecryptStage } from '../crypto/age-stored.js';
import { ENCRYPT_TRANSFORM } from '../crypto/format.js';
import type { KeyRing } from '../crypto/keys.js';
import { decryptStage } from '../crypto/stages.js';
import { firstFailure } from '../first-failure.js';
import { openStoredObject } from '../stored-object.js';
import type { Store } from '../stores/store.js';
import { decodeEvent, segmentId, type DeltaEvent, type DeltaManifest } from './segment.js';

/** The stages a segment may have been written with (no verify-sha256: that is etcd's snapshot trailer). */
const KNOWN_TRANSFORMS = new Set([...CODEC_TRANSFORMS, ENCRYPT_TRANSFORM, AGE_TRANSFORM]);

/**
 * An etcd value is at most --max-request-bytes (1.5 MiB by default, rarely raised past a few MiB);
 * base64 and the JSON around it add a third. A longer line is not an event this writer made.
 */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

export interface SegmentReadOptions {
  store: Store;
  manifest: DeltaManifest;
  /** Keys for AES-GCM encrypted segments (loadKeyRing). @defaultValue none */
  keys?: KeyRing | undefined;
  /** age identities (loadIdentities) for segments written to age recipients. @defaultValue none */
  identities?: AgeIdentities | undefined;
  signal?: AbortSignal | undefined;
  /** Longest event line accepted, in bytes. @defaultValue DEFAULT_MAX_LINE_BYTES (16 MiB) */
  maxLineBytes?: number;
}

/** How a segment is named in messages: its revision range and where it is stored. */
export function describeSegment(manifest: DeltaManifest, store: Pick<Store, 'location'>): string {
  return `delta segment ${segmentId(manifest.firstRevision, manifest.lastRevision)} (${manifest.key} in ${store.location})`;
}

/**
 * The events of one segment, in order. Throws an IntegrityError naming the segment (and the line,
 * for a bad line) on any mismatch; a missing key or identity fails before anything is downloaded.
 */
export async function* readSegment(options: SegmentReadOptions): AsyncGenerator<DeltaEvent, void, undefined> {
  const { store, manifest } = options;
  const what = describeSegment(manifest, store);
  const unknown = manifest.transforms.filter((t) => !KNOWN_TRANSFORMS.has(t));
  if (unknown.length > 0) {
    throw new IntegrityError(
      `${what} was written with ${unknown.join(', ')}, which this version cannot read back; use a newer etcd-autobackup`,
    );
  }
  const decrypt = decryptStage(manifest, options.keys, what) ?? ageDecryptStage(manifest, options.identities, what);
  const codec = codecOf(manifest.compression);
  const maxLine = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;

  const object = await openStoredObject(store, manifest, what);
  type Stage = 'read' | 'decrypt' | 'decompress';
  const failures = firstFailure<Stage>();
  const stored = new Sha256Meter();
  const body = new Sha256Meter();
  const streams: NodeJS.ReadWriteStream[] = [stored];
  if (decrypt) streams.push(failures.tag(decrypt, 'decrypt'));
  if (codec.decompress) streams.push(failures.tag(codec.decompress(), 'decompress'));
  streams.push(body);
  // The callback form: the last stream is read here, and an error anywhere destroys it with that error.
  pipeline([failures.tag(object.body, 'read'), ...streams], () => undefined);
  const tail: Readable = body;

  let lineNo = 0;
  let count = 0;
  let previous = 0;
  const pending: Buffer[] = [];
  let pendingBytes = 0;
  const decode = (line: Buffer): DeltaEvent => {
    lineNo++;
    const where = `${what} line ${lineNo}`;
    let event: DeltaEvent;
    try {
      event = decodeEvent(line.toString('utf8'), where);
    } catch (err) {
      throw new IntegrityError(messageOf(err), { cause: err });
    }
    if (event.revision < manifest.firstRevision || event.revision > manifest.lastRevision) {
      throw new IntegrityError(
        `${where}: revision ${event.revision} is outside the segment's ${manifest.firstRevision}..${manifest.lastRevision}`,
      );
    }
    if (event.revision < previous) {
      throw new IntegrityError(`${where}: revision ${event.revision} comes after revision ${previous}; out of order`);
    }
    if (count === 0 && event.revision !== manifest.firstRevision) {
      throw new IntegrityError(
        `${where}: the first event is at revision ${event.revision}, the segment starts at ${manifest.firstRevision}`,
      );
    }
    previous = event.revision;
    count++;
    return event;
  };

  try {
    try {
      for await (const chunk of tail) {
        options.signal?.throwIfAborted();
        const buf = chunk as Buffer;
        let start = 0;
        for (let nl = buf.indexOf(0x0a, start); nl !== -1; nl = buf.indexOf(0x0a, start)) {
          const piece = buf.subarray(start, nl);
          start = nl + 1;
          let line = piece;
          if (pendingBytes > 0) {
            pending.push(piece);
            line = Buffer.concat(pending, pendingBytes + piece.length);
            pending.length = 0;
            pendingBytes = 0;
          }
          if (line.length > maxLine) throw lineTooLong(what, lineNo + 1, line.length, maxLine);
          if (line.length > 0) yield decode(line);
        }
        if (start < buf.length) {
          pending.push(buf.subarray(start));
          pendingBytes += buf.length - start;
          if (pendingBytes > maxLine) throw lineTooLong(what, lineNo + 1, pendingBytes, maxLine);
        }
      }
    } catch (err) {
      if (err instanceof IntegrityError || options.signal?.aborted) throw err;
      const origin = failures.origin;
      const why = messageOf(origin?.err ?? err);
      switch (origin?.stage) {
        case 'decrypt':
          throw new IntegrityError(`${what} cannot be decrypted: ${why}`, { cause: err });
        case 'decompress':
          throw new IntegrityError(`${what} is corrupt: it does not decompress as ${codec.name} (${why})`, {
            cause: err,
          });
        default:
          throw new Error(`reading ${what} failed: ${why}`, { cause: err });
      }
    }
    if (pendingBytes > 0) {
      throw new IntegrityError(`${what} line ${lineNo + 1}: the body ends inside a line (truncated)`);
    }
    const storedSha256 = stored.digest();
    if (stored.bytes !== manifest.storedSize || storedSha256 !== manifest.storedSha256) {
      throw new IntegrityError(
        `${what} does not match its manifest: the stored bytes (${stored.bytes}) hash to ${storedSha256} but the manifest says ${manifest.storedSha256} (${manifest.storedSize} bytes)`,
      );
    }
    const sha256 = body.digest();
    if (body.bytes !== manifest.bodySize || sha256 !== manifest.sha256) {
      throw new IntegrityError(
        `${what} does not match its manifest: the events (${body.bytes} bytes) hash to ${sha256} but the manifest says ${manifest.sha256} (${manifest.bodySize} bytes)`,
      );
    }
    if (count !== manifest.eventCount || previous !== manifest.lastRevision) {
      throw new IntegrityError(
        `${what} holds ${count} events up to revision ${previous}, but its manifest says ${manifest.eventCount} up to ${manifest.lastRevision}`,
      );
    }
  } finally {
    // A consumer that stops early (or a failure) must not leave the download or a zstd child running.
    object.body.destroy();
    tail.destroy();
  }
}

function lineTooLong(what: string, line: number, bytes: number, max: number): IntegrityError {
  return new IntegrityError(
    `${what} line ${line}: longer than ${max} bytes (${bytes} so far); not an event this writer made, or the segment is corrupt`,
  );
}
