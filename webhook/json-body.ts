/**
 * JSON body parsing for the apiserver's webhook calls, with a precise 4xx for each way a body can
 * be wrong: missing, wrong content type, too large, not JSON, unsupported charset or encoding.
 */
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
    const match = req.is('application/json');
    // type-is counts `Content-Length: 0` as a body; for the sender it is none.
    if (match === null || req.get('content-length') === '0') {
      next(new HttpError(400, `the request has no body; expected ${options.expected} as JSON`));
      return;
    }
    if (match === false) {
      const got = req.get('content-type') ?? 'none';
      next(new HttpError(415, `expected Content-Type application/json, got ${clip(got)}`));
      return;
    }
    const charset = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(req.get('content-type') ?? '')?.[1]?.toLowerCase();
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      next(new HttpError(415, `unsupported charset ${clip(charset)}; send JSON in UTF-8`));
      return;
    }
    const scanner = new JsonShapeScanner({
      maxDepth: options.maxDepth,
      maxItems: options.maxItems?.limit ?? Number.POSITIVE_INFINITY,
    });
    readBody(req, { limit: options.limit, scanner }).then(
      (bytes) => {
        try {
          req.body = parseJsonObject(bytes, options.expected);
        } catch (err) {
          next(err);
          return;
        }
        next();
      },
      (err: unknown) => {
        if (!(err instanceof BodyReadError)) {
          next(err);
          return;
        }
        next(describeBodyProblem(err.problem, options));
      },
    );
  };
}

/** JSON.parse of an object or array body; its messages are rephrased, as they may quote the body. */
function parseJsonObject(bytes: Buffer, expected: string): unknown {
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

function describeBodyProblem(problem: BodyProblem, options: JsonBodyOptions): HttpError {
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
