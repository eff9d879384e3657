/**
 * HTTP errors of the webhook server: every 4xx answers `{ error }` in words the sender can act
 * on, and nothing a client sends can stop the process from serving the next request.
 */
import type { ServerResponse } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from '../core/logger.js';
import { messageOf } from '../core/errors.js';
import { sendJson } from './send-json.js';

/** An error whose message is safe and useful to send back to the client. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    /** Extra response headers, e.g. `Allow` on a 405. */
    readonly headers: Record<string, string> = {},
    /** How loud the rejection is logged: `debug` for senders' mistakes that are no news to anyone. */
    readonly logLevel: 'warn' | 'debug' = 'warn',
  ) {
    super(message);
  }
}

/** Answers 405 for any method but `allowed` on a route. */
export function methodNotAllowed(allowed: string): RequestHandler {
  return (req, _res, next) => {
    next(new HttpError(405, `method ${req.method} is not allowed on ${req.path}; use ${allowed}`, { Allow: allowed }));
  };
}

export function notFound(routes: readonly string[]): RequestHandler {
  return (req, _res, next) => {
    next(new HttpError(404, `no route ${req.method} ${req.path}; routes: ${routes.join(', ')}`));
  };
}

/** The last handler: HttpErrors as they are, anything else as a 500 whose details stay in the log. */
export function errorHandler(log: Logger) {
  return (err: unknown, req: Request, res: Response, next: NextFunction): void => {
    // Once headers are out the answer cannot change; Express' own handler closes the connection.
    if (res.headersSent) {
      next(err);
      return;
    }
    answerError(log, req.method, req.path, res, err);
  };
}

/**
 * The answer and log line of errorHandler, for a route served on plain node:http (the admission
 * fast path); the caller checks that no headers are out yet.
 */
export function answerError(log: Logger, method: string, path: string, res: ServerResponse, err: unknown): void {
  if (err instanceof HttpError) {
    if (err.status >= 400)
      log[err.logLevel]({ method, path, status: err.status, error: err.message }, 'request rejected');
    sendJson(res, { error: err.message }, err.status, err.headers);
    return;
  }
  // Only the message: error objects from body parsing carry the raw body, which may hold secrets.
  log.error({ method, path, error: messageOf(err) }, 'request failed');
  sendJson(res, { error: 'internal error; the server log has the details' }, 500);
}
