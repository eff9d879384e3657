/** Starts the real webhook app on a loopback port with a recording ChangeRecorder. */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import { configSchema, type ConfigInput } from '../../core/config/index.js';
import { createLogger } from '../../core/logger.js';
import { createMetrics, type Metrics } from '../../core/metrics.js';
import type { Change, ChangeRecorder } from '../../core/queue/contract.js';
import { createWebhookApp, type WebhookAppOptions } from '../../webhook/app.js';
import { auditDecodePoolFor } from '../../webhook/audit-decode-pool.js';

export class RecordingRecorder implements ChangeRecorder {
  readonly changes: Change[] = [];
  record(change: Change): void {
    this.changes.push(change);
  }
}

export function fixture<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8')) as T;
}

export interface Harness {
  url: string;
  recorder: RecordingRecorder;
  metrics: Metrics;
  /** Everything the app logged, as JSON lines. */
  logs: () => string;
  close: () => Promise<void>;
}

export interface HarnessOptions extends Partial<Omit<WebhookAppOptions, 'config' | 'log' | 'metrics'>> {
  config?: ConfigInput;
}

export async function startWebhook(options: HarnessOptions = {}): Promise<Harness> {
  // Used unless the test passes its own recorder.
  const recorder = new RecordingRecorder();
  const metrics = createMetrics();
  let logged = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logged += chunk.toString('utf8');
      done();
    },
  });
  const config = configSchema.parse(options.config ?? {});
  const log = createLogger({ level: 'debug', destination: sink });
  // The pool the webhook role builds from the same config.
  const pool = auditDecodePoolFor(config, log);
  const app = createWebhookApp({
    ready: () => true,
    auditDecodePool: pool,
    ...options,
    recorder: options.recorder ?? recorder,
    config,
    log,
    metrics,
  });
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no TCP address');
  return {
    url: `http://127.0.0.1:${addr.port}`,
    recorder,
    metrics,
    logs: () => logged,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => {
          void pool?.close().then(() => (err ? reject(err) : resolve()), reject);
        });
      }),
  };
}

/** POSTs `body` as JSON; strings and bytes go as they are. */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : body instanceof Uint8Array ? new Uint8Array(body) : JSON.stringify(body),
  });
}

/** The value of one sample in Prometheus text format, or undefined when absent. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
