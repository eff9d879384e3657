/**
 * Authentication of the kube-apiserver on POST /audit (auditAuth) and POST /admission
 * (admissionAuth). Its webhook clients send what their kubeconfig holds: the audit webhook's
 * --audit-webhook-config-file, and for admission the kubeconfig named per webhook in the
 * AdmissionConfiguration (--admission-control-config-file): a client certificate, a bearer token,
 * or both. When either is configured for a route, a request without a valid one gets 401 before
 * its body is read. Both are off by default.
 *
 * The TLS server asks for client certificates and has OpenSSL verify them against the CAs of both
 * routes (chain, validity, clientAuth purpose) without rejecting the handshake
 * (core/http/listen.ts), so that unauthenticated routes and probes stay open; each route reads the
 * verdict and checks that the certificate chains to one of its own CAs.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { RequestHandler } from 'express';
import type { Config } from '../core/config/index.js';
import { ConfigError, messageOf } from '../core/errors.js';
import { bearerMatches, readTokenHash } from '../core/http/bearer-token.js';
import type { Logger } from '../core/logger.js';
import { HttpError } from './errors.js';

export interface AuditAuth {
  /** Trusted CAs for client certificates. */
  clientCas: X509Certificate[];
  /** SHA-256 of the expected bearer token (the token itself is not kept). */
  tokenHash: Buffer | undefined;
}

export type WebhookAuthField = 'auditAuth' | 'admissionAuth';

/** Reads the configured CA and token files; a missing or unreadable file is a ConfigError naming it. */
export function loadAuditAuth(
  config: Config['auditAuth'] | undefined,
  read: (path: string) => string = (p) => readFileSync(p, 'utf8'),
  field: WebhookAuthField = 'auditAuth',
): AuditAuth {
  const auth: AuditAuth = { clientCas: [], tokenHash: undefined };
  if (config?.clientCaFile) {
    let text: string;
    try {
      text = read(config.clientCaFile);
    } catch (err) {
      throw new ConfigError(`cannot read ${field}.clientCaFile ${config.clientCaFile}: ${messageOf(err)}`);
    }
    const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (pems.length === 0)
      throw new ConfigError(`${field}.clientCaFile ${config.clientCaFile} holds no PEM certificate`);
    auth.clientCas = pems.map((p) => new X509Certificate(p));
  }
  if (config?.tokenFile) auth.tokenHash = readTokenHash(config.tokenFile, `${field}.tokenFile`, read);
  return auth;
}

export function auditAuthRequired(auth: AuditAuth): boolean {
  return auth.clientCas.length > 0 || auth.tokenHash !== undefined;
}

export function auditAuthentication(auth: AuditAuth, log?: Logger): RequestHandler {
  return webhookAuthentication(auth, { route: '/audit', field: 'auditAuth', sender: 'audit kubeconfig', log });
}

export interface WebhookAuthOptions {
  route: string;
  field: WebhookAuthField;
  /** Where the apiserver's credentials for this route are configured, for the 401 message. */
  sender: string;
  /** Warned at start when the route is open; admission is open by default without a warning. */
  log?: Logger | undefined;
}

export function webhookAuthentication(auth: AuditAuth, options: WebhookAuthOptions): RequestHandler {
  const check = webhookAuthCheck(auth, options);
  return (req, _res, next) => {
    next(check(req));
  };
}

/**
 * The check behind webhookAuthentication on a plain node:http request (the admission fast path
 * runs before Express): the 401 to answer, or undefined when the request may go on.
 */
export function webhookAuthCheck(
  auth: AuditAuth,
  options: WebhookAuthOptions,
): (req: IncomingMessage) => HttpError | undefined {
  const { field } = options;
  if (!auditAuthRequired(auth)) {
    options.log?.warn(
      `POST ${options.route} accepts unauthenticated requests: set ${field}.clientCaFile or ${field}.tokenFile (docs/audit-webhook.md)`,
    );
    return () => undefined;
  }
  const challenge: Record<string, string> = auth.tokenHash
    ? { 'WWW-Authenticate': `Bearer realm="etcd-autobackup ${options.route.slice(1)}"` }
    : {};
  return (req) => {
    const reasons: string[] = [];
    if (auth.tokenHash) {
      const header = req.headers.authorization;
      if (bearerMatches(header, auth.tokenHash)) return undefined;
      reasons.push(header === undefined ? 'no bearer token' : 'the bearer token is wrong');
    }
    if (auth.clientCas.length > 0) {
      const problem = clientCertProblem(req.socket as Partial<TLSSocket>, field, auth.clientCas);
      if (problem === undefined) return undefined;
      reasons.push(problem);
    }
    return new HttpError(
      401,
      `${options.route.slice(1)} webhook authentication failed (${reasons.join('; ')}): the apiserver's ${options.sender} must carry ${describe(auth, field)}`,
      challenge,
    );
  };
}

function describe(auth: AuditAuth, field: WebhookAuthField): string {
  const ways = [];
  if (auth.clientCas.length > 0) ways.push(`a client certificate signed by ${field}.clientCaFile`);
  if (auth.tokenHash) ways.push(`the token of ${field}.tokenFile`);
  return ways.join(' or ');
}

/** OpenSSL's verification errors for a client certificate, in words; CA_FILE names the route's CA field. */
const VERIFY_ERRORS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'the client certificate has expired',
  CERT_NOT_YET_VALID: 'the client certificate is not valid yet',
  INVALID_PURPOSE: 'the client certificate is not for client authentication',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the client certificate is not signed by CA_FILE',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the client certificate is not signed by CA_FILE',
  SELF_SIGNED_CERT_IN_CHAIN: 'the client certificate is not signed by CA_FILE',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the client certificate is self-signed',
  CERT_SIGNATURE_FAILURE: "the client certificate's signature does not verify",
};

/**
 * Why the connection's client certificate is not acceptable, or undefined when it is. OpenSSL
 * verified it against the CAs of every route; `cas`, when given, are the ones of this route, one
 * of which must have issued a certificate of the presented chain.
 */
export function clientCertProblem(
  socket: Partial<TLSSocket>,
  field: WebhookAuthField = 'auditAuth',
  cas?: readonly X509Certificate[],
): string | undefined {
  const notOurs = `the client certificate is not signed by ${field}.clientCaFile`;
  if (typeof socket.getPeerCertificate !== 'function')
    return 'no client certificate (plain HTTP: serve with TLS to use client certificates)';
  if (socket.authorized === true) return cas === undefined || chainsTo(socket, cas) ? undefined : notOurs;
  const peer = socket.getPeerCertificate();
  if (!peer || Object.keys(peer).length === 0) return 'no client certificate';
  const code = socket.authorizationError === undefined ? 'unknown' : String(socket.authorizationError);
  const words = VERIFY_ERRORS[code]?.replace('CA_FILE', `${field}.clientCaFile`);
  return words ?? `the client certificate was not accepted (${code})`;
}

function chainsTo(socket: Partial<TLSSocket>, cas: readonly X509Certificate[]): boolean {
  let cert = socket.getPeerCertificate?.(true);
  const seen = new Set<string>();
  while (cert?.raw !== undefined && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    const x509 = new X509Certificate(cert.raw);
    if (cas.some((ca) => x509.checkIssued(ca) && x509.verify(ca.publicKey))) return true;
    cert = cert.issuerCertificate;
  }
  return false;
}
