/**
 * POST /audit: the kube-apiserver's audit webhook backend sends batches of audit events
 * (`EventList`). Each event that passes the filters is recorded as one change. The answer comes
 * as soon as the batch is filtered: the apiserver retries a batch that fails, so a bad event is
 * skipped and counted, never a reason to reject the whole batch.
 */
import type { RequestHandler } from 'express';
import { messageOf } from '../core/errors.js';
import { countTrigger } from '../core/metrics.js';
import type { AuditDecodePool } from './audit-decode-pool.js';
import { auditBodyOptions, decodeAuditBatch, type AuditDecodeLimits, type AuditDecodeResult } from './audit-decode.js';
import { HttpError } from './errors.js';
import { readJsonBytes } from './json-body.js';
import { sendJson } from './send-json.js';
import type { TriggerRouteOptions } from './route-options.js';

export interface AuditBatchResult {
  events: number;
  triggers: number;
}

export interface AuditRouteOptions extends TriggerRouteOptions {
  limits: AuditDecodeLimits;
  /** The decode threads; without them the batch is decoded on the event loop. */
  pool?: AuditDecodePool | undefined;
}

/**
 * Reads the body here (byte limit, Content-Encoding), decodes it on a thread or inline with the
 * same function, then records the changes on this thread, where the recorder lives.
 */
export function auditRoute(options: AuditRouteOptions): RequestHandler {
  const bodyOptions = auditBodyOptions(options.limits);
  return (req, res, next) => {
    readJsonBytes(req, bodyOptions)
      .then((bytes) => {
        const arrivalMs = options.now().getTime();
        return options.pool === undefined
          ? decodeAuditBatch(bytes, options.limits, options.filters, arrivalMs)
          : options.pool.decode(bytes, arrivalMs);
      })
      .then((decoded) => sendJson(res, recordAuditBatch(decoded, options)))
      .catch(next);
  };
}

/** Records a decoded batch's changes and counts it; a refused batch throws its HttpError. */
export function recordAuditBatch(decoded: AuditDecodeResult, options: TriggerRouteOptions): AuditBatchResult {
  if (!decoded.ok) throw new HttpError(decoded.status, decoded.message, {}, decoded.logLevel);
  const { recorder, metrics, log } = options;
  for (const change of decoded.changes) {
    try {
      recorder.record({ source: 'audit', resource: change.resource, at: new Date(change.atMs) });
    } catch (err) {
      // The contract says record never throws; if it does, the rest of the batch still counts.
      log.error({ error: messageOf(err), resource: change.resource }, 'recording an audit change failed');
    }
  }
  // Counted per batch, not per event: a labelled counter's inc hashes its labels each time, which
  // was a tenth of an audit batch's CPU in the benchmark's profile.
  const triggers = decoded.changes.length;
  if (triggers > 0) countTrigger(metrics, 'audit', undefined, triggers);
  for (const [reason, n] of decoded.ignored) countTrigger(metrics, 'audit', reason, n);
  return { events: decoded.events, triggers };
}
