/**
 * A cap on the requests of one route whose bodies are being read and handled at once. Audit
 * batches are big and the apiserver retries them with backoff, so a flood of them is told to come
 * back later (429 + Retry-After) instead of queueing up in memory and holding the event loop that
 * admission reviews need answered within the apiserver's timeout.
 */
import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { HttpError } from './errors.js';

export interface BodySlotsOptions {
  /** Requests handled at once; the next one is refused until one finishes. */
  max: number;
  /** The config field of `max`, named in the refusal. */
  field: string;
  /**
   * Seconds the sender is asked to wait.
   * @defaultValue 1
   */
  retryAfterSeconds?: number;
}

/**
 * Takes a slot for the request answered by `res` until its answer is finished or its connection
 * closed, or gives the 429 to answer when none is free. One counter per route, shared by the
 * Express route and the admission fast path that runs before Express.
 */
export type BodySlots = (path: string, res: ServerResponse) => HttpError | undefined;

export function createBodySlots(options: BodySlotsOptions): BodySlots {
  let busy = 0;
  const retryAfter = String(options.retryAfterSeconds ?? 1);
  return (path, res) => {
    if (busy >= options.max)
      return new HttpError(
        429,
        `too many ${path} requests at once (${options.max}, ${options.field}); retry after ${retryAfter}s`,
        { 'Retry-After': retryAfter },
      );
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
    return undefined;
  };
}

export function bodySlots(slots: BodySlotsOptions | BodySlots): RequestHandler {
  const take = typeof slots === 'function' ? slots : createBodySlots(slots);
  return (req, res, next) => {
    next(take(req.path, res));
  };
}
