/**
 * POST /audit: the kube-apiserver's audit webhook backend sends batches of audit events
 * (`EventList`). Each event that passes the filters is recorded as one change. The answer comes
 * as soon as the batch is filtered: the apiserver retries a batch that fails, so a bad event is
 * skipped and counted, never a reason to reject the whole batch.
 */
import type { RequestHandler } from 'express';
import { messageOf } from '../core/errors.js';
import { countTrigger } from '../core/metrics.js';
import { filterAuditEvent } from './filters.js';
import { HttpError } from './errors.js';
import { apiObject } from './json-body.js';
import { sendJson } from './send-json.js';
import type { TriggerRouteOptions } from './route-options.js';
import { AUDIT_API_VERSIONS, auditEventSchema, type AuditEvent } from './wire.js';

export interface AuditBatchResult {
  events: number;
  triggers: number;
}

export function auditRoute(options: TriggerRouteOptions): RequestHandler {
  return (req, res) => {
    const items = eventListItems(req.body);
    sendJson(res, recordAuditEvents(items, options));
  };
}

/** The items of an EventList body; throws a 400 naming what is wrong with the envelope. */
export function eventListItems(body: unknown): unknown[] {
  const { items } = apiObject(body, AUDIT_API_VERSIONS, 'EventList');
  // Go encodes an empty list as null.
  if (items === undefined || items === null) return [];
  if (!Array.isArray(items)) throw new HttpError(400, 'EventList.items must be an array of audit events');
  return items as unknown[];
}

export function recordAuditEvents(items: readonly unknown[], options: TriggerRouteOptions): AuditBatchResult {
  const { filters, recorder, metrics, log, now } = options;
  let triggers = 0;
  // Counted per batch, not per event: a labelled counter's inc hashes its labels each time, which
  // was a tenth of an audit batch's CPU in the benchmark's profile.
  const ignored = new Map<string, number>();
  const ignore = (reason: string): void => {
    ignored.set(reason, (ignored.get(reason) ?? 0) + 1);
  };
  for (const item of items) {
    const parsed = auditEventSchema.safeParse(item);
    if (!parsed.success) {
      ignore('malformed');
      continue;
    }
    const decision = filterAuditEvent(parsed.data, filters);
    if (!decision.trigger) {
      ignore(decision.reason);
      continue;
    }
    triggers++;
    try {
      recorder.record({ source: 'audit', resource: decision.resource, at: eventTime(parsed.data, now) });
    } catch (err) {
      // The contract says record never throws; if it does, the rest of the batch still counts.
      log.error({ error: messageOf(err), resource: decision.resource }, 'recording an audit change failed');
    }
  }
  if (triggers > 0) countTrigger(metrics, 'audit', undefined, triggers);
  for (const [reason, n] of ignored) countTrigger(metrics, 'audit', reason, n);
  return { events: items.length, triggers };
}

/** When the write completed, as the apiserver saw it; arrival time when the event lacks one. */
function eventTime(event: AuditEvent, now: () => Date): Date {
  const stamp = event.stageTimestamp ?? event.requestReceivedTimestamp;
  const at = stamp === undefined ? undefined : new Date(stamp);
  return at === undefined || Number.isNaN(at.getTime()) ? now() : at;
}
