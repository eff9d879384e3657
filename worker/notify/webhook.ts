/**
 * Notifications to a webhook (docs/notifications.md): the generic JSON body or Slack's
 * incoming-webhook `{"text"}`. Failures always; published snapshots and passed drills with
 * `onSuccess`. In the background with retries (network errors, 429, 5xx; doubling backoff), each
 * try bounded; the URL is a secret: it is never logged, and failures are logged by field (event,
 * attempt, HTTP status, error code), never by the error's text, which could carry the URL.
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Config } from '../../core/config/index.js';
import type { DrillRecord } from '../drill.js';
import type { Manifest } from '../manifest.js';
import { drillEvent, failedEvent, publishedEvent } from './kube-events.js';
import type { Notifier, SnapshotFailure } from './notifier.js';

export const NOTIFICATION_FORMAT = 'etcd-autobackup-notification/v1';

export type NotificationEvent = 'snapshot.published' | 'snapshot.failed' | 'drill.passed' | 'drill.failed';

export interface Notification {
  format: typeof NOTIFICATION_FORMAT;
  event: NotificationEvent;
  ok: boolean;
  cluster: string;
  /** When it happened (ISO). */
  at: string;
  /** One line for people; the same as the Kubernetes Event's note. */
  text: string;
  snapshot?: { id: string; revision: number; dbSize: number; storedSize: number; key: string; createdAt: string };
  failure?: { jobId: string; attempt: number; stage: string; message: string; retrying: boolean };
  drill?: { id: string; ok: boolean; durationMs: number; failure?: string; checks: { name: string; ok: boolean }[] };
}

// Pure: what to send.

export function publishedNotification(m: Manifest, at: Date): Notification {
  return {
    format: NOTIFICATION_FORMAT,
    event: 'snapshot.published',
    ok: true,
    cluster: m.cluster,
    at: at.toISOString(),
    text: publishedEvent(m).note,
    snapshot: {
      id: m.id,
      revision: m.etcd.revision,
      dbSize: m.dbSize,
      storedSize: m.storedSize,
      key: m.key,
      createdAt: m.createdAt,
    },
  };
}

export function failedNotification(f: SnapshotFailure, at: Date): Notification {
  return {
    format: NOTIFICATION_FORMAT,
    event: 'snapshot.failed',
    ok: false,
    cluster: f.cluster,
    at: at.toISOString(),
    text: failedEvent(f).note,
    failure: { jobId: f.jobId, attempt: f.attempt, stage: f.stage, message: f.message, retrying: f.retrying },
  };
}

export function drillNotification(r: DrillRecord): Notification {
  return {
    format: NOTIFICATION_FORMAT,
    event: r.ok ? 'drill.passed' : 'drill.failed',
    ok: r.ok,
    cluster: r.cluster,
    at: r.at,
    text: drillEvent(r).note,
    drill: {
      id: r.id,
      ok: r.ok,
      durationMs: r.durationMs,
      ...(r.failure !== undefined ? { failure: r.failure } : {}),
      checks: r.checks.map((c) => ({ name: c.name, ok: c.ok })),
    },
  };
}

/** The body for `format`: ours, or Slack's incoming-webhook text (with a marker for failures). */
export function bodyOf(n: Notification, format: 'json' | 'slack'): unknown {
  if (format === 'json') return n;
  return {
    text: `${n.ok ? ':white_check_mark:' : ':rotating_light:'} *etcd-autobackup ${n.cluster}* ${n.event}: ${n.text}`,
  };
}

/**
 * A failing job is retried until a snapshot covers its changes; one message for its first failed
 * attempt and one when it is given up, not one per retry.
 */
export function worthSending(f: SnapshotFailure): boolean {
  return f.attempt === 1 || !f.retrying;
}

/** Whether an HTTP answer is worth another try. */
export function retryable(status: number): boolean {
  return status === 429 || status >= 500;
}

// I/O.

export interface WebhookNotifierOptions {
  settings: Config['notify']['webhook'];
  log: Logger;
  /** Counts notifications given up, by reason (`http`, `network`, `timeout`, `config`). */
  onFailure?: (reason: 'http' | 'network' | 'timeout' | 'config') => void;
  now?: () => Date;
}

export class WebhookNotifier implements Notifier {
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly options: WebhookNotifierOptions) {}

  snapshotPublished(m: Manifest): void {
    if (this.options.settings.onSuccess) this.send(publishedNotification(m, this.now()));
  }

  snapshotFailed(f: SnapshotFailure): void {
    if (worthSending(f)) this.send(failedNotification(f, this.now()));
  }

  drillFinished(r: DrillRecord): void {
    if (!r.ok || this.options.settings.onSuccess) this.send(drillNotification(r));
  }

  /** Waits for notifications on their way (shutdown, tests); never rejects. */
  async settle(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  private now(): Date {
    return (this.options.now ?? (() => new Date()))();
  }

  private send(n: Notification): void {
    const p = this.deliver(n).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  private async deliver(n: Notification): Promise<void> {
    const { settings, log } = this.options;
    const url = await this.url();
    if (url === undefined) {
      log.warn({ event: n.event }, 'notify.webhook has no URL (url or urlFile); notification not sent');
      this.options.onFailure?.('config');
      return;
    }
    const body = JSON.stringify(bodyOf(n, settings.format));
    let reason: 'http' | 'network' | 'timeout' = 'network';
    for (let attempt = 1; attempt <= settings.attempts; attempt++) {
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'etcd-autobackup' },
          body,
          signal: AbortSignal.timeout(settings.timeout),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        reason = 'http';
        log.warn({ event: n.event, attempt, status: res.status }, 'notification webhook answered with an error');
        if (!retryable(res.status)) break;
      } catch (err) {
        reason = isTimeout(err) ? 'timeout' : 'network';
        log.warn({ event: n.event, attempt, code: errorCode(err) }, 'notification webhook could not be reached');
      }
      if (attempt < settings.attempts) await sleep(settings.backoff * 2 ** (attempt - 1));
    }
    log.error({ event: n.event, attempts: settings.attempts, reason }, 'notification given up');
    this.options.onFailure?.(reason);
  }

  private async url(): Promise<string | undefined> {
    const { url, urlFile } = this.options.settings;
    if (url) return url;
    if (!urlFile) return undefined;
    // Read each time: a rotated Secret applies without a restart.
    const text = (await readFile(urlFile, 'utf8').catch(() => '')).trim();
    return text === '' ? undefined : text;
  }
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
}

/** The error's code (ECONNREFUSED, ...) or name: never its message, which may quote the URL. */
function errorCode(err: unknown): string {
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  if (cause && typeof cause.code === 'string') return cause.code;
  return err instanceof Error ? err.name : 'unknown';
}
