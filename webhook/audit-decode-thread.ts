/**
 * The entry of an audit decode thread (webhook/audit-decode-pool.ts): decodes the bodies the main
 * thread posts with the filters it got once at start, and answers each with its id.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { messageOf } from '../core/errors.js';
import { decodeAuditBatch } from './audit-decode.js';
import type { DecodeReply, DecodeRequest, ThreadData, ThreadReady } from './audit-decode-pool.js';

const { limits, filters } = workerData as ThreadData;
const port = parentPort;
if (port === null) throw new Error('audit-decode-thread runs as a worker thread only');
port.on('message', ({ id, bytes, arrivalMs }: DecodeRequest) => {
  let reply: DecodeReply;
  try {
    reply = { id, result: decodeAuditBatch(bytes, limits, filters, arrivalMs) };
  } catch (err) {
    reply = { id, error: messageOf(err) };
  }
  port.postMessage(reply);
});
const ready: ThreadReady = { ready: true };
port.postMessage(ready);
