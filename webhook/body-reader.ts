/**
 * Reads a request body into memory, inflating gzip, deflate or br on the way, and gives up as soon
 * as the body breaks a limit: its size after decoding, or the shape the JsonShapeScanner measures
 * as the bytes arrive. A refused body is drained, not parsed, so the answer can still be sent.
 */
import type { IncomingMessage } from 'node:http';
import type { Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { JsonShapeScanner, ShapeProblem } from './json-scan.js';

export type BodyProblem =
  | { kind: 'too-large' }
  | { kind: 'encoding-unsupported'; encoding: string }
  | { kind: 'encoding-corrupt'; encoding: string }
  | { kind: 'aborted' }
  | ShapeProblem;

export class BodyReadError extends Error {
  override readonly name = 'BodyReadError';
  constructor(readonly problem: BodyProblem) {
    super(`request body refused: ${problem.kind}`);
  }
}

export interface ReadBodyOptions {
  /** Largest decoded body accepted, in bytes; the encoded body may not exceed it either. */
  limit: number;
  scanner?: JsonShapeScanner;
}

const DECODERS: Record<string, () => Transform> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/** The decoder for a Content-Encoding header, `identity` when none, or undefined when unsupported. */
export function decoderFor(header: string | undefined): (() => Transform) | 'identity' | undefined {
  const encoding = (header ?? 'identity').trim().toLowerCase();
  if (encoding === '' || encoding === 'identity') return 'identity';
  return DECODERS[encoding];
}

export function readBody(req: IncomingMessage, options: ReadBodyOptions): Promise<Buffer> {
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  const decoder = decoderFor(encoding);
  if (decoder === undefined) {
    req.resume();
    return Promise.reject(new BodyReadError({ kind: 'encoding-unsupported', encoding }));
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > options.limit) {
    req.resume();
    return Promise.reject(new BodyReadError({ kind: 'too-large' }));
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let decoded = 0;
    let encoded = 0;
    let settled = false;
    const inflate = decoder === 'identity' ? undefined : decoder();

    const fail = (problem: BodyProblem): void => {
      if (settled) return;
      settled = true;
      chunks.length = 0;
      inflate?.destroy();
      // Drain the rest unread so the refusal can still be answered on this connection.
      req.unpipe();
      req.resume();
      reject(new BodyReadError(problem));
    };
    const take = (chunk: Buffer): void => {
      if (settled) return;
      decoded += chunk.length;
      if (decoded > options.limit) return fail({ kind: 'too-large' });
      const shape = options.scanner?.push(chunk);
      if (shape !== undefined) return fail(shape);
      chunks.push(chunk);
    };
    const done = (): void => {
      if (settled) return;
      settled = true;
      // Most admission reviews arrive in one chunk: no copy for those.
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, decoded));
    };

    if (inflate === undefined) {
      req.on('data', take);
      req.on('end', done);
    } else {
      req.on('data', (chunk: Buffer) => {
        if (settled) return;
        encoded += chunk.length;
        if (encoded > options.limit) return fail({ kind: 'too-large' });
        inflate.write(chunk);
      });
      req.on('end', () => inflate.end());
      inflate.on('data', take);
      inflate.on('end', done);
      inflate.on('error', () => fail({ kind: 'encoding-corrupt', encoding }));
    }
    req.on('error', () => fail({ kind: 'aborted' }));
    req.on('close', () => {
      if (!req.complete) fail({ kind: 'aborted' });
    });
  });
}
