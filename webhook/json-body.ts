/**
 * JSON body parsing for the apiserver's webhook calls, with a precise 4xx for each way a body can
 * be wrong: missing, wrong content type, too large, not JSON, unsupported charset or encoding.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import { BodyReadError, readBody, type BodyProblem } from './body-reader.js';
import { HttpError } from './errors.js';
import { JsonShapeScanner } from './json-scan.js';

export interface JsonBodyOptions {
  /** Largest body accepted, in bytes (after decompression). */
  limit: number;
  /** The config field that sets `limit`, named in the 413 answer. */
  limitField: string;
  /** Deepest nesting of objects and arrays accepted (webhook.maxJsonDepth). */
  maxDepth: number;
  /** Most items in a list of the top-level object (an EventList's items), with its config field. */
  maxItems?: { limit: number; field: string };
  /** What the body should be, for messages: `an audit.k8s.io/v1 EventList`. */
  expected: string;
}

export function jsonBody(options: JsonBodyOptions): RequestHandler {
  return (req, _res, next) => {
    readJsonBody(req, options).then(
      (body) => {
        req.body = body;
        next();
      },
      (err: unknown) => next(err),
    );
  };
}

/**
 * The body of a webhook call as parsed JSON, on a plain node:http request (the admission fast path
 * runs before Express); rejects with the HttpError to answer. A body refused for its headers is
 * left unread, one refused while reading is drained.
 */
export function readJsonBody(req: IncomingMessage, options: JsonBodyOptions): Promise<unknown> {
  const scanner = new JsonShapeScanner({
    maxDepth: options.maxDepth,
    maxItems: options.maxItems?.limit ?? Number.POSITIVE_INFINITY,
  });
  return readJsonBytes(req, options, scanner).then((bytes) => parseJsonObject(bytes, options.expected));
}

/**
 * The raw bytes of a JSON webhook body (headers checked, Content-Encoding decoded, byte limit
 * kept); with a scanner the shape limits are kept as the bytes arrive, without one the caller
 * scans them itself (the audit decode does, off the event loop).
 */
export function readJsonBytes(
  req: IncomingMessage,
  options: JsonBodyOptions,
  scanner?: JsonShapeScanner,
): Promise<Buffer> {
  const refused = headerProblem(req.headers, options.expected);
  if (refused !== undefined) return Promise.reject(refused);
  return readBody(req, { limit: options.limit, scanner }).catch((err: unknown) => {
    throw err instanceof BodyReadError ? describeBodyProblem(err.problem, options) : err;
  });
}

/**
 * What is wrong with the body's headers, as type-is (Express' `req.is`) would see them: no body
 * is neither a length nor a chunked encoding, or a `Content-Length: 0` (a body to type-is, none to
 * the sender); the media type is the part before `;`, trimmed and in lower case.
 */
function headerProblem(headers: IncomingHttpHeaders, expected: string): HttpError | undefined {
  const length = headers['content-length'];
  if ((headers['transfer-encoding'] === undefined && Number.isNaN(Number(length))) || length === '0')
    return new HttpError(400, `the request has no body; expected ${expected} as JSON`);
  const type = headers['content-type'];
  const semicolon = type?.indexOf(';') ?? -1;
  const media = (semicolon === -1 ? type : type?.slice(0, semicolon))?.trim().toLowerCase();
  if (media !== 'application/json')
    return new HttpError(415, `expected Content-Type application/json, got ${clip(type ?? 'none')}`);
  if (semicolon === -1) return undefined;
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(type ?? '')?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')
    return new HttpError(415, `unsupported charset ${clip(charset)}; send JSON in UTF-8`);
  return undefined;
}

/** JSON.parse of an object or array body; its messages are rephrased, as they may quote the body. */
export function parseJsonObject(bytes: Buffer, expected: string): unknown {
  const text = bytes.toString('utf8');
  const first = /\S/.exec(text)?.[0];
  if (first !== '{' && first !== '[')
    throw new HttpError(400, `request body is not a valid JSON object; expected ${expected}`);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const at = /position (\d+)/.exec(err instanceof Error ? err.message : '')?.[1];
    throw new HttpError(
      400,
      `request body is not a valid JSON object${at ? ` (error at position ${at})` : ''}; expected ${expected}`,
    );
  }
}

export function describeBodyProblem(problem: BodyProblem, options: JsonBodyOptions): HttpError {
  switch (problem.kind) {
    case 'too-large':
      return new HttpError(
        413,
        `request body is larger than ${options.limit} bytes; raise ${options.limitField} to accept it`,
      );
    case 'depth':
      return new HttpError(
        400,
        `request body nests objects and arrays deeper than ${problem.limit} levels; raise webhook.maxJsonDepth to accept it`,
      );
    case 'items':
      return new HttpError(
        413,
        `request body holds more than ${problem.limit} items; send smaller batches or raise ${options.maxItems?.field ?? 'the limit'}`,
      );
    case 'encoding-unsupported':
      return new HttpError(
        415,
        `unsupported Content-Encoding ${clip(problem.encoding)}; send identity, gzip, deflate or br`,
      );
    case 'encoding-corrupt':
      return new HttpError(
        400,
        `request body is not valid ${clip(problem.encoding)} data (Content-Encoding)`,
        {},
        'debug',
      );
    case 'aborted':
      return new HttpError(400, 'the client aborted the request before its body was complete');
  }
}

/** Echoed client values stay short: they are for recognising the mistake, not for storage. */
export function clip(value: string, max = 80): string {
  return JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
}

/**
 * The fields of a Kubernetes API object body after checking its apiVersion and kind; throws a 400
 * naming what was expected and what came. `hint` says how to fix the sender.
 */
export function apiObject(
  body: unknown,
  apiVersions: readonly string[],
  kind: string,
  hint = '',
): Record<string, unknown> {
  const fields =
    typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined;
  const { apiVersion, kind: gotKind } = fields ?? {};
  if (fields === undefined || typeof apiVersion !== 'string' || !apiVersions.includes(apiVersion) || gotKind !== kind) {
    const got =
      fields === undefined
        ? 'a JSON value that is not an object'
        : `apiVersion ${clip(String(apiVersion))} kind ${clip(String(gotKind))}`;
    throw new HttpError(400, `expected apiVersion ${apiVersions.join(' or ')} and kind ${kind}, got ${got}${hint}`);
  }
  return fields;
}
