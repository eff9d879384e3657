/**
 * A cap on the requests of one route whose bodies are being read and handled at once. Audit
 * batches are big and the apiserver retries them with backoff, so a flood of them is told to come
 * back later (429 + Retry-After) instead of queueing up in memory and holding the event loop that
 * admission reviews need answered within the apiserver's timeout.
 */
import type { RequestHandler } from 'express';
import { HttpError } from './errors.js';

export interface BodySlotsOptions {
  /** Requests handled at once; the next one is refused until one finishes. */
  max: number;
  /** The config field of `max`, named in the refusal. */
  field: string;
  /** Seconds the sender is asked to wait. */
  retryAfterSeconds?: number;
}

export function bodySlots(options: BodySlotsOptions): RequestHandler {
  let busy = 0;
  const retryAfter = String(options.retryAfterSeconds ?? 1);
  return (req, res, next) => {
    if (busy >= options.max) {
      next(
        new HttpError(
          429,
          `too many ${req.path} requests at once (${options.max}, ${options.field}); retry after ${retryAfter}s`,
          { 'Retry-After': retryAfter },
        ),
      );
      return;
    }
    busy++;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      busy--;
    };
    // `close` also comes for a client that went away before its answer.
    res.on('finish', release);
    res.on('close', release);
    next();
  };
}
