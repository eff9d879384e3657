/**
 * POST /admission served on node:http ahead of Express. The apiserver waits on every admission
 * review (its timeout, at most 30 s, counts against the user's request), so the tail latency of
 * this route is the one that matters. Express' per-request set-up (prototype swaps, the router's
 * layer walk and `next` closures, a final handler per request) made garbage that, at 1,000-2,000
 * reviews a second, filled the young generation and put the scavenges' pauses on the tail
 * (README > Performance, "Webhook"). This path does exactly what the Express route does: the same
 * authentication, slots, body checks and limits, the same answers, log lines and metrics, and the
 * same slot counter as the Express route, which still serves every other spelling of the path
 * (`/admission/`, a query string) and every other method (405).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { messageOf } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { admissionAnswer } from './admission.js';
import type { BodySlots } from './body-slots.js';
import { answerError, type HttpError } from './errors.js';
import { readJsonBody, type JsonBodyOptions } from './json-body.js';
import type { TriggerRouteOptions } from './route-options.js';

export const ADMISSION_PATH = '/admission';

export interface AdmissionFastPathOptions {
  /** webhook/audit-auth.ts' check for admissionAuth. */
  authenticate: (req: IncomingMessage) => HttpError | undefined;
  /** The slots of webhook.admissionConcurrency, shared with the Express route. */
  slots: BodySlots;
  body: JsonBodyOptions;
  triggers: TriggerRouteOptions;
  metrics: Metrics;
  log: Logger;
}

/** Serves the request and says true when it is `POST /admission`; otherwise leaves it alone. */
export type FastPath = (req: IncomingMessage, res: ServerResponse) => boolean;

export function admissionFastPath(options: AdmissionFastPathOptions): FastPath {
  const { authenticate, slots, body, triggers, metrics, log } = options;
  // One labelled child per status code: prom-client hashes a label object on every `inc`.
  const answered = new Map<number, { inc: () => void }>();
  const count = function (this: ServerResponse): void {
    let counter = answered.get(this.statusCode);
    if (counter === undefined) {
      counter = metrics.httpRequests.labels({ route: ADMISSION_PATH, code: String(this.statusCode) });
      answered.set(this.statusCode, counter);
    }
    counter.inc();
  };
  // Whatever goes wrong is answered, as Express' error handler would; nothing may escape into
  // node:http's request event, where a throw would end the process.
  const fail = (req: IncomingMessage, res: ServerResponse, err: unknown): void => {
    try {
      if (res.headersSent) req.socket.destroy();
      else answerError(log, 'POST', ADMISSION_PATH, res, err);
    } catch (failed) {
      log.error({ path: ADMISSION_PATH, error: messageOf(failed) }, 'answering a request failed');
      req.socket.destroy();
    }
  };
  return (req, res) => {
    if (req.url !== ADMISSION_PATH || req.method !== 'POST') return false;
    try {
      res.on('finish', count);
      const refused = authenticate(req) ?? slots(ADMISSION_PATH, res);
      if (refused !== undefined) {
        fail(req, res, refused);
        return true;
      }
      readJsonBody(req, body)
        .then((review) => admissionAnswer(review, res, triggers))
        .catch((err: unknown) => fail(req, res, err));
    } catch (err) {
      fail(req, res, err);
    }
    return true;
  };
}
