/**
 * POST /admission: a validating admission webhook that always allows. It is a change signal, not
 * a gate: the answer never waits on anything but the body, and a well-formed review is allowed
 * even when recording the change fails. Dry runs are allowed and not recorded, which is what
 * `sideEffects: NoneOnDryRun` promises the apiserver.
 */
import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { messageOf } from '../core/errors.js';
import { countTrigger } from '../core/metrics.js';
import { filterAdmissionRequest } from './filters.js';
import { HttpError } from './errors.js';
import { apiObject } from './json-body.js';
import { sendJson } from './send-json.js';
import type { TriggerRouteOptions } from './route-options.js';
import { ADMISSION_API_VERSION, admissionRequestSchema } from './wire.js';

export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: { uid: string; allowed: true };
}

export function admissionRoute(options: TriggerRouteOptions): RequestHandler {
  return (req, res) => {
    admissionAnswer(req.body, res, options);
  };
}

/**
 * Records the review's change and answers it allowed, on the Express route and the fast path
 * (webhook/admission-fast-path.ts); throws the 400 for a body that is no AdmissionReview.
 */
export function admissionAnswer(body: unknown, res: ServerResponse, options: TriggerRouteOptions): void {
  const { uid, request } = reviewRequest(body);
  try {
    recordAdmission(request, options);
  } catch (err) {
    options.log.error(
      { error: messageOf(err), uid },
      'recording an admission change failed; the request is allowed anyway',
    );
  }
  sendJson(res, allow(uid));
}

export function allow(uid: string): AdmissionReviewResponse {
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response: { uid, allowed: true } };
}

/** The uid and request of an AdmissionReview; throws a 400 when there is no uid to answer to. */
export function reviewRequest(body: unknown): { uid: string; request: unknown } {
  const { request } = apiObject(
    body,
    [ADMISSION_API_VERSION],
    'AdmissionReview',
    '; register the webhook with admissionReviewVersions: ["v1"]',
  );
  const uid = typeof request === 'object' && request !== null ? (request as Record<string, unknown>).uid : undefined;
  if (typeof uid !== 'string' || uid === '')
    throw new HttpError(400, 'AdmissionReview.request.uid must be a non-empty string');
  return { uid, request };
}

/** Filters and records one admission request; a request this cannot read is counted, not recorded. */
export function recordAdmission(request: unknown, options: TriggerRouteOptions): void {
  const { filters, recorder, metrics, now } = options;
  const parsed = admissionRequestSchema.safeParse(request);
  if (!parsed.success) {
    countTrigger(metrics, 'admission', 'malformed');
    return;
  }
  const decision = filterAdmissionRequest(parsed.data, filters);
  if (!decision.trigger) {
    countTrigger(metrics, 'admission', decision.reason);
    return;
  }
  countTrigger(metrics, 'admission');
  recorder.record({ source: 'admission', resource: decision.resource, at: now() });
}
