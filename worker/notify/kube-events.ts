/**
 * Kubernetes Events (events.k8s.io/v1) about the worker Deployment, one per published snapshot,
 * failed snapshot attempt and drill: `kubectl describe deploy <release>-worker` and `kubectl get
 * events` show them. Fire and forget: each create is bounded by `events.timeout`, at most
 * MAX_IN_FLIGHT run at once (more are dropped), and a failure is logged and counted
 * (`etcd_autobackup_events_failed_total`), never thrown.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { AppsV1Api, EventsV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { formatBytes, formatDuration } from '../../core/duration.js';
import { messageOf } from '../../core/errors.js';
import type { DrillRecord } from '../drill.js';
import type { Manifest } from '../manifest.js';
import type { Notifier, SnapshotFailure } from './notifier.js';

export const REPORTING_CONTROLLER = 'etcd-autobackup.io/worker';
/** The apiserver rejects an Event note over 1 kB. */
export const MAX_NOTE = 1024;
const MAX_IN_FLIGHT = 16;

export interface KubeEventOptions {
  kube: KubeConfig;
  namespace: string;
  /** The worker Deployment the Events are about (events.deployment). */
  deployment: string;
  /** Longest time one Event create may take. @defaultValue 5000 */
  timeoutMs?: number;
  log: Logger;
  /** Counts Events that could not be created, by reason (`timeout`, `dropped`, `api`). */
  onFailure?: (reason: 'timeout' | 'dropped' | 'api') => void;
  now?: () => Date;
}

/** An Event's reason, type and note (pure). */
export interface EventContent {
  type: 'Normal' | 'Warning';
  reason: string;
  action: string;
  note: string;
}

export function publishedEvent(m: Manifest): EventContent {
  return {
    type: 'Normal',
    reason: 'SnapshotPublished',
    action: 'Snapshot',
    note: clip(
      `snapshot ${m.id} of cluster ${m.cluster}: revision ${m.etcd.revision}, ${formatBytes(m.dbSize)} database, ${formatBytes(m.storedSize)} stored at ${m.key}, took ${formatDuration(m.durationMs)}, cause ${m.cause.source}`,
    ),
  };
}

export function failedEvent(f: SnapshotFailure): EventContent {
  return {
    type: 'Warning',
    reason: 'SnapshotFailed',
    action: 'Snapshot',
    note: clip(
      `snapshot job ${f.jobId} of cluster ${f.cluster}, attempt ${f.attempt}, failed at stage ${f.stage}${f.retrying ? ' (retrying)' : ' (not retried)'}: ${f.message}`,
    ),
  };
}

export function drillEvent(r: DrillRecord): EventContent {
  return r.ok
    ? {
        type: 'Normal',
        reason: 'DrillPassed',
        action: 'Drill',
        note: clip(
          `snapshot ${r.id} of cluster ${r.cluster} restored into etcd ${r.etcdVersion ?? '?'} and matched its manifest (${r.checks.map((c) => c.name).join(', ')}) in ${formatDuration(r.durationMs)}`,
        ),
      }
    : {
        type: 'Warning',
        reason: 'DrillFailed',
        action: 'Drill',
        note: clip(`drill of snapshot ${r.id} of cluster ${r.cluster} failed: ${r.failure ?? 'see its drill record'}`),
      };
}

function clip(text: string): string {
  return text.length <= MAX_NOTE ? text : `${text.slice(0, MAX_NOTE - 3)}...`;
}

export class KubeEventNotifier implements Notifier {
  private readonly events: EventsV1Api;
  private readonly apps: AppsV1Api;
  private readonly timeoutMs: number;
  private readonly instance = `${hostname()}/${process.pid}`;
  private inFlight = 0;
  private uid: Promise<string | undefined> | undefined;
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly options: KubeEventOptions) {
    this.events = options.kube.makeApiClient(EventsV1Api);
    this.apps = options.kube.makeApiClient(AppsV1Api);
    this.timeoutMs = options.timeoutMs ?? 5_000;
  }

  snapshotPublished(m: Manifest): void {
    this.emit(publishedEvent(m));
  }

  snapshotFailed(f: SnapshotFailure): void {
    this.emit(failedEvent(f));
  }

  drillFinished(r: DrillRecord): void {
    this.emit(drillEvent(r));
  }

  /** Waits for the Events on their way (for shutdown and tests); never rejects. */
  async settle(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  private emit(content: EventContent): void {
    if (this.inFlight >= MAX_IN_FLIGHT) {
      this.options.log.warn({ reason: content.reason }, 'too many Kubernetes Events on their way; this one is dropped');
      this.options.onFailure?.('dropped');
      return;
    }
    this.inFlight++;
    const p = this.create(content).finally(() => {
      this.inFlight--;
      this.pending.delete(p);
    });
    this.pending.add(p);
  }

  private async create(content: EventContent): Promise<void> {
    const { namespace, deployment, log } = this.options;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.timeoutMs);
    });
    try {
      const work = (async () => {
        // `kubectl describe` finds Events by the object's uid: read it once (get on this Deployment only).
        this.uid ??= this.apps
          .readNamespacedDeployment({ name: deployment, namespace })
          .then((d) => d.metadata?.uid)
          .catch((err: unknown) => {
            log.warn({ err: messageOf(err), deployment }, 'cannot read the worker Deployment; Events carry no uid');
            this.uid = undefined;
            return undefined;
          });
        const uid = await this.uid;
        const now = (this.options.now ?? (() => new Date()))();
        await this.events.createNamespacedEvent({
          namespace,
          body: {
            apiVersion: 'events.k8s.io/v1',
            kind: 'Event',
            metadata: {
              name: `${deployment}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`,
              namespace,
            },
            eventTime: now,
            reportingController: REPORTING_CONTROLLER,
            reportingInstance: this.instance.slice(0, 128),
            action: content.action,
            reason: content.reason,
            type: content.type,
            note: content.note,
            regarding: {
              apiVersion: 'apps/v1',
              kind: 'Deployment',
              name: deployment,
              namespace,
              ...(uid ? { uid } : {}),
            },
          },
        });
        return 'ok' as const;
      })();
      const result = await Promise.race([work, timedOut]);
      if (result === 'timeout') {
        work.catch(() => undefined);
        log.warn(
          { reason: content.reason, timeoutMs: this.timeoutMs },
          'creating a Kubernetes Event timed out (events.timeout)',
        );
        this.options.onFailure?.('timeout');
      }
    } catch (err) {
      log.warn({ reason: content.reason, err: messageOf(err) }, 'creating a Kubernetes Event failed');
      this.options.onFailure?.('api');
    } finally {
      clearTimeout(timer);
    }
  }
}
