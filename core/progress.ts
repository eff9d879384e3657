/**
 * Progress of a long transfer: a counting pass-through stream and two reporters, a redrawn line
 * on a terminal (bytes, rate, ETA) and a log line every few seconds elsewhere.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { Logger } from 'pino';
import { formatBytes, formatDuration } from './duration.js';

export interface Progress {
  /** Bytes so far. */
  bytes: number;
  /** Expected total, when known. */
  total: number | undefined;
  /** Milliseconds since the start. */
  elapsed: number;
}

export type ProgressListener = (p: Progress, final: boolean) => void;

export class ByteMeter extends Transform {
  bytes = 0;
  total: number | undefined;
  private readonly started = Date.now();
  private lastReport = 0;

  constructor(
    private readonly listener?: ProgressListener,
    private readonly everyMs = 1000,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    const now = Date.now();
    if (this.listener && now - this.lastReport >= this.everyMs) {
      this.lastReport = now;
      this.listener(this.snapshot(now), false);
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.listener?.(this.snapshot(Date.now()), true);
    done();
  }

  private snapshot(now: number): Progress {
    return { bytes: this.bytes, total: this.total, elapsed: now - this.started };
  }
}

export function describeProgress(p: Progress): string {
  const rate = p.elapsed > 0 ? (p.bytes / p.elapsed) * 1000 : 0;
  const parts = [formatBytes(p.bytes)];
  if (p.total) parts[0] += ` / ${formatBytes(p.total)} (${Math.min(100, (p.bytes / p.total) * 100).toFixed(0)}%)`;
  parts.push(`${formatBytes(Math.round(rate))}/s`);
  if (p.total && rate > 0 && p.bytes < p.total)
    parts.push(`ETA ${formatDuration(((p.total - p.bytes) / rate) * 1000)}`);
  return parts.join('  ');
}

/** A reporter for `what` (e.g. "upload"): a live line on a TTY, else a log line every 10 s. */
export function progressReporter(
  what: string,
  log: Logger,
  out: NodeJS.WriteStream = process.stderr,
): ProgressListener {
  if (out.isTTY) {
    return (p, final) => {
      out.write(`\r\x1b[2K${what}: ${describeProgress(p)}${final ? '\n' : ''}`);
    };
  }
  let last = 0;
  return (p, final) => {
    if (final || p.elapsed - last >= 10_000) {
      last = p.elapsed;
      log.info({ bytes: p.bytes, total: p.total, elapsedMs: p.elapsed }, `${what}: ${describeProgress(p)}`);
    }
  };
}
