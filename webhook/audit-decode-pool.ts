/**
 * A few worker threads running decodeAuditBatch, so that parsing audit batches (most of the
 * webhook's CPU under an audit flood) uses more than one core and never holds up the event loop
 * that answers admission reviews. A thread that dies takes only its in-flight batches with it:
 * they fail (the apiserver retries a failed batch) and a fresh thread takes its place: at once
 * the first time, then after a delay that doubles while its threads keep dying without answering
 * a batch (a missing or broken thread file would otherwise restart threads as fast as they fail).
 * Batches go only to threads that said they loaded; while none has, they are decoded on the event
 * loop, as with 0 threads: slower, but none is refused for it.
 */
import { Worker } from 'node:worker_threads';
import type { Config } from '../core/config/index.js';
import { messageOf } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { auditDecodeLimits, decodeAuditBatch, type AuditDecodeLimits, type AuditDecodeResult } from './audit-decode.js';
import type { Filters } from './filters.js';

/** What a thread gets once at start. */
export interface ThreadData {
  limits: AuditDecodeLimits;
  filters: Filters;
}
export interface DecodeRequest {
  id: number;
  bytes: Uint8Array;
  arrivalMs: number;
}
export type DecodeReply = { id: number; result: AuditDecodeResult } | { id: number; error: string };
/** A thread's first message: it loaded and listens. */
export interface ThreadReady {
  ready: true;
}

export interface AuditDecodePoolOptions {
  /** Threads to run; at least 1. */
  threads: number;
  limits: AuditDecodeLimits;
  filters: Filters;
  log: Logger;
  /**
   * The thread's entry file; tests pass one that misbehaves.
   * @defaultValue audit-decode-thread beside this module (.ts under tsx, .js compiled)
   */
  entry?: URL;
  /**
   * Delays before restarting a thread that died again without answering a batch.
   * @defaultValue `{ initialMs: 1000, maxMs: 60000 }`
   */
  restartBackoff?: RestartBackoff;
}

export interface RestartBackoff {
  /** The delay after the second death in a row; each further one doubles it. */
  initialMs: number;
  /** The longest delay. */
  maxMs: number;
}

const DEFAULT_BACKOFF: RestartBackoff = { initialMs: 1000, maxMs: 60_000 };

/**
 * How long to wait before starting a thread after `deathsInARow` threads in that slot died
 * without answering a batch: none after the first (a batch that killed one thread says nothing
 * about the next), then initialMs, doubling, up to maxMs.
 */
export function restartDelayMs(deathsInARow: number, backoff: RestartBackoff): number {
  if (deathsInARow <= 1) return 0;
  return Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(deathsInARow - 2, 30));
}

interface Pending {
  resolve: (result: AuditDecodeResult) => void;
  reject: (err: Error) => void;
}
interface Slot {
  /** Undefined while waiting to restart. */
  worker: Worker | undefined;
  /** The worker said it loaded; until then batches go elsewhere. */
  ready: boolean;
  pending: Map<number, Pending>;
  /** Threads of this slot that died in a row without answering a batch. */
  deaths: number;
  restart?: NodeJS.Timeout;
}

/**
 * tsx's API, loaded only for a .ts entry (tests under tsx); the compiled build loads the .js entry
 * and never this dev dependency (test/image/dockerfile.test.ts checks what dist imports).
 */
const TSX_API = 'tsx/esm/api';

/** Compiled, this module is a .js beside a .js entry; under tsx both are .ts. */
const DEFAULT_ENTRY = new URL(
  import.meta.url.endsWith('.ts') ? './audit-decode-thread.ts' : './audit-decode-thread.js',
  import.meta.url,
);

/** The pool webhook.auditDecodeThreads asks for; none for 0 (batches are decoded on the event loop). */
export function auditDecodePoolFor(
  config: Pick<Config, 'webhook' | 'filters'>,
  log: Logger,
): AuditDecodePool | undefined {
  const threads = config.webhook.auditDecodeThreads;
  if (threads === 0) return undefined;
  return new AuditDecodePool({ threads, limits: auditDecodeLimits(config.webhook), filters: config.filters, log });
}

export class AuditDecodePool {
  private readonly slots: Slot[] = [];
  private nextId = 0;
  private closed = false;

  constructor(private readonly options: AuditDecodePoolOptions) {
    for (let i = 0; i < Math.max(1, options.threads); i++) {
      const slot: Slot = { worker: undefined, ready: false, pending: new Map(), deaths: 0 };
      this.slots.push(slot);
      this.start(slot);
    }
  }

  /** Decodes on the least busy thread; rejects (a 500 to the sender) when that thread dies first. */
  decode(bytes: Buffer, arrivalMs: number): Promise<AuditDecodeResult> {
    if (this.closed) return Promise.reject(new Error('the audit decode threads are closed'));
    const live = this.slots.filter((s) => s.ready);
    if (live.length === 0) {
      const { limits, filters } = this.options;
      return Promise.resolve(decodeAuditBatch(bytes, limits, filters, arrivalMs));
    }
    const slot = live.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const worker = slot.worker as Worker;
    const id = this.nextId++;
    // A body that owns its whole ArrayBuffer moves to the thread without a copy; a slice of
    // Node's shared pool must be copied (structured clone does that).
    const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return new Promise<AuditDecodeResult>((resolve, reject) => {
      // A busy thread keeps the process alive until it answers; an idle one does not.
      if (slot.pending.size === 0) worker.ref();
      slot.pending.set(id, { resolve, reject });
      const request: DecodeRequest = { id, bytes: view, arrivalMs };
      worker.postMessage(request, whole && bytes.buffer instanceof ArrayBuffer ? [bytes.buffer] : []);
    });
  }

  /** Threads loaded and taking batches. */
  get threadsReady(): number {
    return this.slots.filter((s) => s.ready).length;
  }

  /** Ends the threads; batches still in flight fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const slot of this.slots) clearTimeout(slot.restart);
    await Promise.all(this.slots.flatMap((slot) => (slot.worker ? [slot.worker.terminate()] : [])));
  }

  private start(slot: Slot): void {
    const { limits, filters, entry = DEFAULT_ENTRY } = this.options;
    const data: ThreadData = { limits, filters };
    // Under tsx (tests) a worker does not inherit the loader on Node 20: register it first.
    const worker = entry.pathname.endsWith('.ts')
      ? new Worker(
          `import(${JSON.stringify(TSX_API)}).then((tsx) => tsx.tsImport(${JSON.stringify(entry.href)}, ${JSON.stringify(entry.href)}))`,
          {
            eval: true,
            workerData: data,
          },
        )
      : new Worker(entry, { workerData: data });
    slot.worker = worker;
    slot.ready = false;
    worker.unref();
    worker.on('message', (reply: DecodeReply | ThreadReady) => {
      if ('ready' in reply) {
        slot.ready = true;
        return;
      }
      // An answer, even a failed decode, proves the thread loaded and runs.
      slot.deaths = 0;
      const pending = slot.pending.get(reply.id);
      if (pending === undefined) return;
      slot.pending.delete(reply.id);
      if (slot.pending.size === 0) worker.unref();
      if ('result' in reply) pending.resolve(reply.result);
      else {
        this.options.log.error({ error: reply.error }, 'decoding an audit batch failed');
        pending.reject(new Error(`decoding an audit batch failed: ${reply.error}`));
      }
    });
    let failed = false;
    const fail = (why: string): void => {
      if (failed) return;
      failed = true;
      const lost = slot.pending.size;
      for (const pending of slot.pending.values()) pending.reject(new Error(`audit decode thread ended: ${why}`));
      slot.pending.clear();
      slot.worker = undefined;
      slot.ready = false;
      if (this.closed) return;
      slot.deaths++;
      const restartInMs = restartDelayMs(slot.deaths, this.options.restartBackoff ?? DEFAULT_BACKOFF);
      this.options.log.error(
        { error: why, lostBatches: lost, deathsInARow: slot.deaths, restartInMs },
        restartInMs === 0
          ? 'audit decode thread ended; starting a new one'
          : 'audit decode thread ended again; starting a new one after a delay (batches meanwhile decode on the other threads, or the event loop)',
      );
      if (restartInMs === 0) this.start(slot);
      else {
        slot.restart = setTimeout(() => {
          slot.restart = undefined;
          if (!this.closed) this.start(slot);
        }, restartInMs);
        slot.restart.unref();
      }
    };
    worker.on('error', (err) => fail(messageOf(err)));
    worker.on('exit', (code) => fail(`exit code ${code}`));
  }
}
