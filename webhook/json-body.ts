/**
 * JSON body parsing for the apiserver's webhook calls, with a precise 4xx for each way a body can
 * be wrong: missing, wrong content type, too large, not JSON, unsupported charset or encoding.
 */
import express, { type RequestHandler } from 'express';
import { HttpError } from './errors.js';

export interface JsonBodyOptions {
  /** Largest body accepted, in bytes (after decompression). */
  limit: number;
  /** The config field that sets `limit`, named in the 413 answer. */
  limitField: string;
  /** What the body should be, for messages: `an audit.k8s.io/v1 EventList`. */
  expected: string;
}

export function jsonBody(options: JsonBodyOptions): RequestHandler {
  // The content type is checked here rather than by body-parser, which would silently skip the body.
  const parse = express.json({ limit: options.limit, strict: true, type: () => true });
  return (req, res, next) => {
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
    parse(req, res, (err?: unknown) => {
      next(err === undefined ? undefined : describeBodyError(err, options));
    });
  };
}

/** body-parser's errors rephrased; its own messages may quote the body, which may hold secrets. */
function describeBodyError(err: unknown, options: JsonBodyOptions): unknown {
  if (typeof err !== 'object' || err === null) return err;
  const e = err as Record<string, unknown>;
  switch (e.type) {
    case 'entity.too.large':
      return new HttpError(
        413,
        `request body is larger than ${options.limit} bytes; raise ${options.limitField} to accept it`,
      );
    case 'entity.parse.failed': {
      const at = /position (\d+)/.exec(typeof e.message === 'string' ? e.message : '')?.[1];
      return new HttpError(
        400,
        `request body is not a valid JSON object${at ? ` (error at position ${at})` : ''}; expected ${options.expected}`,
      );
    }
    case 'charset.unsupported':
      return new HttpError(415, `unsupported charset ${clip(String(e.charset))}; send JSON in UTF-8`);
    case 'encoding.unsupported':
      return new HttpError(
        415,
        `unsupported Content-Encoding ${clip(String(e.encoding))}; send identity, gzip, deflate or br`,
      );
    case 'request.aborted':
      return new HttpError(400, 'the client aborted the request before its body was complete');
    case 'request.size.invalid':
      return new HttpError(400, 'the request body does not match its Content-Length');
    default:
      return err;
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
