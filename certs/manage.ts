/**
 * The webhook's own certificates, shared by its replicas through one Secret: a CA and a serving
 * certificate for the Service's DNS names. The first replica to find no Secret creates it (create
 * is atomic: the others get AlreadyExists and read the winner's); renewal replaces the Secret with
 * its resourceVersion, so when two replicas renew at once one gets a 409 Conflict, re-reads, and
 * finds the other's fresh certificate. The CA goes into the caBundle of the webhook's
 * ValidatingWebhookConfiguration, patched only when it differs, with the same precondition.
 */
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Secret,
} from '@kubernetes/client-node';
import type { Logger } from '../core/logger.js';
import { apiFailure, describeApiError } from '../core/kube.js';
import { certDnsNames, createCa, dueForRenewal, issueCert, issuedBy, keyMatchesCert, serviceDnsNames } from './pki.js';

export interface WebhookCerts {
  /** The CA that signs the serving certificate, then (during a CA rotation) the previous one. */
  caBundle: string;
  caKey: string;
  cert: string;
  key: string;
}

export interface CertSyncOptions {
  kube: KubeConfig;
  namespace: string;
  secretName: string;
  serviceName: string;
  /**
   * ValidatingWebhookConfiguration whose caBundle is kept current.
   * @defaultValue none: no caBundle is patched
   */
  webhookConfigName?: string | undefined;
  /** Validity of a new serving certificate, in days. */
  validityDays: number;
  /** Validity of a new CA, in days. */
  caValidityDays: number;
  /** A certificate this close to expiry (or already expired) is replaced. */
  renewBeforeMs: number;
  log: Logger;
  /**
   * The clock, for tests.
   * @defaultValue () => new Date()
   */
  now?: () => Date;
  /**
   * Rounds of read-and-write after a 409 before giving up until the next check.
   * @defaultValue 5
   */
  maxAttempts?: number;
}

export type CertAction = 'created' | 'adopted' | 'renewed' | 'unchanged';

const KEYS = { caCert: 'ca.crt', caKey: 'ca.key', cert: 'tls.crt', key: 'tls.key' } as const;

/** What the Secret's contents need: nothing, a new serving certificate, or a new CA as well. */
export type CertPlan = 'keep' | 'serving' | 'all';

export function planCerts(
  certs: WebhookCerts | undefined,
  dnsNames: readonly string[],
  renewBeforeMs: number,
  now: Date,
): CertPlan {
  if (!certs) return 'all';
  try {
    if (!keyMatchesCert(certs.caKey, certs.caBundle) || dueForRenewal(certs.caBundle, renewBeforeMs, now)) return 'all';
    if (!keyMatchesCert(certs.key, certs.cert) || !issuedBy(certs.cert, certs.caBundle)) return 'serving';
    const names = certDnsNames(certs.cert);
    if (dnsNames.some((n) => !names.includes(n))) return 'serving';
    return dueForRenewal(certs.cert, renewBeforeMs, now) ? 'serving' : 'keep';
  } catch {
    // Garbled PEM: start over.
    return 'all';
  }
}

/** New certificates for `plan`; a new CA keeps the old one in the bundle while it is still valid. */
export function makeCerts(
  plan: Exclude<CertPlan, 'keep'>,
  old: WebhookCerts | undefined,
  options: Pick<CertSyncOptions, 'namespace' | 'serviceName' | 'validityDays' | 'caValidityDays'>,
  now: Date,
): WebhookCerts {
  const dnsNames = serviceDnsNames(options.serviceName, options.namespace);
  let caBundle: string;
  let caKey: string;
  if (plan === 'all' || !old) {
    const ca = createCa(`etcd-autobackup webhook CA (${options.namespace})`, options.caValidityDays, now);
    caBundle = ca.cert;
    caKey = ca.key;
    const previous = old ? firstCert(old.caBundle) : undefined;
    if (previous && !dueForRenewal(previous, 0, now)) caBundle = `${ca.cert.trimEnd()}\n${previous.trimEnd()}\n`;
  } else {
    caBundle = old.caBundle;
    caKey = old.caKey;
  }
  const serving = issueCert(
    { cert: firstCert(caBundle) ?? caBundle, key: caKey },
    {
      commonName: dnsNames[2] as string,
      dnsNames,
      usage: ['server'],
      days: options.validityDays,
      now,
    },
  );
  return { caBundle, caKey, cert: serving.cert, key: serving.key };
}

function firstCert(bundle: string): string | undefined {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(bundle);
  return m ? `${m[0]}\n` : undefined;
}

function certsOf(secret: V1Secret): WebhookCerts | undefined {
  const d = secret.data ?? {};
  const text = (k: string) => (d[k] === undefined ? undefined : Buffer.from(d[k], 'base64').toString('utf8'));
  const [caBundle, caKey, cert, key] = [text(KEYS.caCert), text(KEYS.caKey), text(KEYS.cert), text(KEYS.key)];
  if (!caBundle || !caKey || !cert || !key) return undefined;
  return { caBundle, caKey, cert, key };
}

function secretData(c: WebhookCerts): Record<string, string> {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return {
    [KEYS.caCert]: b64(c.caBundle),
    [KEYS.caKey]: b64(c.caKey),
    [KEYS.cert]: b64(c.cert),
    [KEYS.key]: b64(c.key),
  };
}

/** Reads the Secret and creates or renews it as needed; safe to run in every replica at once. */
export async function ensureWebhookCerts(
  options: CertSyncOptions,
): Promise<{ certs: WebhookCerts; action: CertAction }> {
  const { namespace, secretName: name, log } = options;
  const now = options.now ?? (() => new Date());
  const core = options.kube.makeApiClient(CoreV1Api);
  const dnsNames = serviceDnsNames(options.serviceName, namespace);
  const where = `Secret ${namespace}/${name}`;
  const attempts = options.maxAttempts ?? 5;
  let sawConflict = false;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let secret: V1Secret | undefined;
    try {
      secret = await core.readNamespacedSecret({ name, namespace });
    } catch (err) {
      if (apiFailure(err)?.code !== 404)
        throw new Error(`reading ${where} failed: ${describeApiError(err)}`, { cause: err });
    }
    if (!secret) {
      const certs = makeCerts('all', undefined, options, now());
      try {
        await core.createNamespacedSecret({
          namespace,
          body: {
            apiVersion: 'v1',
            kind: 'Secret',
            type: 'kubernetes.io/tls',
            metadata: {
              name,
              namespace,
              labels: { 'app.kubernetes.io/name': 'etcd-autobackup', 'app.kubernetes.io/component': 'webhook-certs' },
            },
            data: secretData(certs),
          },
        });
        log.info({ secret: where }, 'created the webhook CA and serving certificate');
        return { certs, action: 'created' };
      } catch (err) {
        if (apiFailure(err)?.reason !== 'AlreadyExists' && apiFailure(err)?.code !== 409)
          throw new Error(`creating ${where} failed: ${describeApiError(err)}`, { cause: err });
        log.debug({ secret: where }, 'another replica created the certificate Secret first; reading it');
        sawConflict = true;
        continue;
      }
    }
    const current = certsOf(secret);
    const plan = planCerts(current, dnsNames, options.renewBeforeMs, now());
    if (plan === 'keep' && current)
      return { certs: current, action: sawConflict || attempt > 1 ? 'adopted' : 'unchanged' };
    const renewed = makeCerts(plan === 'keep' ? 'serving' : plan, current, options, now());
    try {
      await core.replaceNamespacedSecret({
        name,
        namespace,
        body: { ...secret, apiVersion: 'v1', kind: 'Secret', data: { ...(secret.data ?? {}), ...secretData(renewed) } },
      });
      log.info(
        { secret: where, renewed: plan === 'all' ? 'CA and serving certificate' : 'serving certificate' },
        'renewed the webhook certificates',
      );
      return { certs: renewed, action: 'renewed' };
    } catch (err) {
      if (apiFailure(err)?.code !== 409)
        throw new Error(`updating ${where} failed: ${describeApiError(err)}`, { cause: err });
      log.debug(
        { secret: where, attempt },
        'the certificate Secret changed meanwhile (another replica renewed it); reading it again',
      );
      sawConflict = true;
    }
  }
  throw new Error(
    `${where} kept changing while this replica tried to renew it (${attempts} conflicts); it tries again at the next check`,
  );
}

export type BundleAction = 'patched' | 'unchanged' | 'missing';

/** Sets the caBundle of every webhook in the configuration to `caBundle` (PEM). */
export async function syncCaBundle(
  options: Pick<CertSyncOptions, 'kube' | 'webhookConfigName' | 'log' | 'maxAttempts'>,
  caBundle: string,
): Promise<BundleAction> {
  const name = options.webhookConfigName;
  if (!name) return 'unchanged';
  const api = options.kube.makeApiClient(AdmissionregistrationV1Api);
  const wanted = Buffer.from(caBundle).toString('base64');
  const attempts = options.maxAttempts ?? 5;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let config;
    try {
      config = await api.readValidatingWebhookConfiguration({ name });
    } catch (err) {
      if (apiFailure(err)?.code === 404) {
        options.log.warn(
          { webhookConfiguration: name },
          'ValidatingWebhookConfiguration not found; its caBundle is set when it appears (install it, or unset certs.webhookConfigName)',
        );
        return 'missing';
      }
      throw new Error(`reading ValidatingWebhookConfiguration ${name} failed: ${describeApiError(err)}`, {
        cause: err,
      });
    }
    const ops: { op: string; path: string; value: unknown }[] = [];
    (config.webhooks ?? []).forEach((w, i) => {
      if (w.clientConfig.caBundle !== wanted)
        ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: wanted });
    });
    if (ops.length === 0) return 'unchanged';
    // The resourceVersion is a precondition: webhooks reordered meanwhile must not get the wrong index patched.
    const body = [
      { op: 'replace', path: '/metadata/resourceVersion', value: config.metadata?.resourceVersion },
      ...ops,
    ];
    try {
      await api.patchValidatingWebhookConfiguration(
        { name, body },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      );
      options.log.info({ webhookConfiguration: name, webhooks: ops.length }, 'set the webhook caBundle');
      return 'patched';
    } catch (err) {
      if (apiFailure(err)?.code !== 409)
        throw new Error(
          `patching the caBundle of ValidatingWebhookConfiguration ${name} failed: ${describeApiError(err)}`,
          { cause: err },
        );
      options.log.debug({ webhookConfiguration: name, attempt }, 'webhook configuration changed meanwhile; retrying');
    }
  }
  throw new Error(
    `ValidatingWebhookConfiguration ${name} kept changing while patching its caBundle (${attempts} conflicts); it is tried again at the next check`,
  );
}

export interface CertManager {
  current(): WebhookCerts;
  stop(): void;
}

/**
 * Ensures the certificates and the caBundle now, then re-checks every `checkIntervalMs`; calls
 * `onChange` when the serving certificate changed (renewed here or by another replica).
 */
export async function startCertManager(
  options: CertSyncOptions & { checkIntervalMs: number; onChange: (certs: WebhookCerts) => void },
): Promise<CertManager> {
  let { certs } = await ensureWebhookCerts(options);
  await syncCaBundle(options, certs.caBundle).catch((err: unknown) =>
    options.log.warn(
      { err: describeApiError(err) },
      'keeping the webhook caBundle current failed; retrying at the next check',
    ),
  );
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    void (async () => {
      try {
        const next = await ensureWebhookCerts(options);
        if (next.certs.cert !== certs.cert) {
          certs = next.certs;
          options.onChange(certs);
        }
        await syncCaBundle(options, certs.caBundle);
      } catch (err) {
        options.log.warn(
          { err: describeApiError(err) },
          'webhook certificate check failed; serving the current certificate and retrying at the next check',
        );
      } finally {
        running = false;
      }
    })();
  }, options.checkIntervalMs);
  timer.unref();
  return { current: () => certs, stop: () => clearInterval(timer) };
}
