/**
 * Which certificate the webhook serves with, and how it follows renewals: managed in a Secret
 * (certs.manage), or files from a mounted Secret (webhook.tls), or none (plain HTTP, for local runs
 * and for a TLS-terminating proxy in front).
 */
import { readFile } from 'node:fs/promises';
import type { Config } from '../core/config/index.js';
import { ConfigError, messageOf } from '../core/errors.js';
import { readCertFiles, watchCertFiles, type Listening, type TlsServing } from '../core/http/listen.js';
import type { Logger } from '../core/logger.js';

export interface ServingTls {
  tls: TlsServing;
  /** From now on, renewed certificates go to `listening`. */
  attach(listening: Listening): void;
  close(): Promise<void>;
}

const FILE_CHECK_MS = 30_000;

export async function startServingTls(
  config: Pick<Config, 'webhook' | 'certs' | 'auditAuth'> & Partial<Pick<Config, 'admissionAuth'>>,
  log: Logger,
): Promise<ServingTls | undefined> {
  // Client certificates are only asked for when /audit or /admission checks them; each route then
  // checks that the certificate chains to its own CA (webhook/audit-auth.ts).
  const cas = [
    await readClientCa(config.auditAuth.clientCaFile, 'auditAuth'),
    await readClientCa(config.admissionAuth?.clientCaFile, 'admissionAuth'),
  ].filter((c): c is string => c !== undefined);
  const clientCa = cas.length > 0 ? cas.join('\n') : undefined;
  let target: Listening | undefined;
  const apply = (pem: { cert: string; key: string }, why: string) => {
    try {
      target?.setCertificate(pem);
      log.info(why);
    } catch (err) {
      log.error(
        { err: (err as Error).message },
        'the renewed certificate was not usable; still serving the previous one',
      );
    }
  };

  if (config.certs.manage) {
    // The Kubernetes client loads only when it is used.
    const [{ defaultKubeConfig, resolveNamespace }, { startCertManager }] = await Promise.all([
      import('../core/kube.js'),
      import('./manage.js'),
    ]);
    const kube = defaultKubeConfig();
    const c = config.certs;
    const manager = await startCertManager({
      kube,
      namespace: resolveNamespace(kube, c.namespace),
      secretName: c.secretName,
      serviceName: c.serviceName,
      webhookConfigName: c.webhookConfigName,
      validityDays: c.validityDays,
      caValidityDays: c.caValidityDays,
      renewBeforeMs: c.renewBefore,
      checkIntervalMs: c.checkInterval,
      log: log.child({ component: 'certs' }),
      onChange: (certs) => apply(certs, 'serving the renewed webhook certificate'),
    });
    const { cert, key } = manager.current();
    return {
      tls: { cert, key, clientCa },
      attach: (l) => (target = l),
      close: () => Promise.resolve(manager.stop()),
    };
  }

  const { certFile, keyFile } = config.webhook.tls;
  if (certFile && keyFile) {
    const initial = await readCertFiles(certFile, keyFile);
    const watcher = watchCertFiles(certFile, keyFile, {
      intervalMs: FILE_CHECK_MS,
      initial,
      onChange: (pem) => apply(pem, `serving the renewed certificate from ${certFile}`),
      onError: (err) =>
        log.warn({ err: err.message }, 'reading the renewed TLS certificate failed; still serving the previous one'),
    });
    return { tls: { ...initial, clientCa }, attach: (l) => (target = l), close: () => Promise.resolve(watcher.stop()) };
  }

  if (clientCa)
    log.warn(
      'auditAuth.clientCaFile or admissionAuth.clientCaFile is set but the server speaks plain HTTP: client certificates cannot be checked; set webhook.tls or certs.manage',
    );
  return undefined;
}

async function readClientCa(file: string | undefined, field: string): Promise<string | undefined> {
  if (!file) return undefined;
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${field}.clientCaFile ${file}: ${messageOf(err)}`);
  }
}
