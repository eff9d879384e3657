/**
 * The audit route's decode of one EventList body, as a pure function of its bytes: shape scan,
 * JSON parse, envelope check, per-event validation and filters. No I/O and no shared state, so
 * the same function runs on the event loop (webhook.auditDecodeThreads 0) or in a worker thread
 * (webhook/audit-decode-pool.ts), where a 3 MB batch cannot delay admission answers.
 */
import type { Config } from '../core/config/index.js';
import { filterAuditEvent, type Filters } from './filters.js';
import { HttpError } from './errors.js';
import { apiObject, describeBodyProblem, parseJsonObject, type JsonBodyOptions } from './json-body.js';
import { jsonShapeProblem } from './json-scan.js';
import { AUDIT_API_VERSIONS, auditEventSchema, type AuditEvent } from './wire.js';

export const AUDIT_EXPECTED = 'an audit.k8s.io/v1 EventList';

/** The limits of an audit body, as the route reads it; plain data, so it can be posted to a thread. */
export interface AuditDecodeLimits {
  /**
   * Largest body accepted, in bytes (webhook.auditBodyLimit); only named in messages here, the
   * reader keeps it.
   */
  limit: number;
  /** Deepest nesting accepted (webhook.maxJsonDepth). */
  maxDepth: number;
  /** Most events in one EventList (webhook.auditMaxEvents). */
  maxItems: number;
}

/** The audit body limits of the webhook config. */
export function auditDecodeLimits(webhook: Config['webhook']): AuditDecodeLimits {
  return { limit: webhook.auditBodyLimit, maxDepth: webhook.maxJsonDepth, maxItems: webhook.auditMaxEvents };
}

/** A change the batch asks for; the time is epoch milliseconds so that it crosses threads as is. */
export interface AuditChange {
  resource: string;
  atMs: number;
}

export type AuditDecodeResult =
  | {
      ok: true;
      /** Items in the EventList, valid or not. */
      events: number;
      changes: AuditChange[];
      /** Ignored events per reason, in first-seen order: counted once per batch and reason. */
      ignored: Array<[string, number]>;
    }
  | { ok: false; status: number; message: string; logLevel: 'warn' | 'debug' };

/** The options readJsonBytes and describeBodyProblem take for an audit body. */
export function auditBodyOptions(limits: AuditDecodeLimits): JsonBodyOptions {
  return {
    limit: limits.limit,
    limitField: 'webhook.auditBodyLimit',
    maxDepth: limits.maxDepth,
    maxItems: { limit: limits.maxItems, field: 'webhook.auditMaxEvents' },
    expected: AUDIT_EXPECTED,
  };
}

/**
 * Decodes an EventList body; `arrivalMs` stands in for events without a usable timestamp. A body
 * the sender must fix comes back as the status and message to answer, never as a throw.
 */
export function decodeAuditBatch(
  bytes: Uint8Array,
  limits: AuditDecodeLimits,
  filters: Filters,
  arrivalMs: number,
): AuditDecodeResult {
  try {
    const shape = jsonShapeProblem(bytes, limits);
    if (shape !== undefined) throw describeBodyProblem(shape, auditBodyOptions(limits));
    const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const items = eventListItems(parseJsonObject(buffer, AUDIT_EXPECTED));
    return { ok: true, events: items.length, ...decideEvents(items, filters, arrivalMs) };
  } catch (err) {
    if (err instanceof HttpError)
      return { ok: false, status: err.status, message: err.message, logLevel: err.logLevel };
    throw err;
  }
}

/** The items of an EventList body; throws a 400 naming what is wrong with the envelope. */
export function eventListItems(body: unknown): unknown[] {
  const { items } = apiObject(body, AUDIT_API_VERSIONS, 'EventList');
  // Go encodes an empty list as null.
  if (items === undefined || items === null) return [];
  if (!Array.isArray(items)) throw new HttpError(400, 'EventList.items must be an array of audit events');
  return items as unknown[];
}

function decideEvents(
  items: readonly unknown[],
  filters: Filters,
  arrivalMs: number,
): { changes: AuditChange[]; ignored: Array<[string, number]> } {
  const changes: AuditChange[] = [];
  const ignored = new Map<string, number>();
  for (const item of items) {
    const parsed = auditEventSchema.safeParse(item);
    if (!parsed.success) {
      ignored.set('malformed', (ignored.get('malformed') ?? 0) + 1);
      continue;
    }
    const decision = filterAuditEvent(parsed.data, filters);
    if (!decision.trigger) {
      ignored.set(decision.reason, (ignored.get(decision.reason) ?? 0) + 1);
      continue;
    }
    changes.push({ resource: decision.resource, atMs: eventTime(parsed.data, arrivalMs) });
  }
  return { changes, ignored: [...ignored] };
}

/** When the write completed, as the apiserver saw it; arrival time when the event lacks one. */
function eventTime(event: AuditEvent, arrivalMs: number): number {
  const stamp = event.stageTimestamp ?? event.requestReceivedTimestamp;
  const at = stamp === undefined ? Number.NaN : Date.parse(stamp);
  return Number.isNaN(at) ? arrivalMs : at;
}
