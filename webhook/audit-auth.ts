/**
 * Authentication of the kube-apiserver on POST /audit. Its audit webhook client sends what its
 * kubeconfig holds: a client certificate, a bearer token, or both. When either is configured,
 * a request without a valid one gets 401 before its body is read. Admission needs none of this:
 * the apiserver only calls it over TLS with the caBundle it trusts, and it sends nothing to verify.
 *
 * The TLS server asks for client certificates and has OpenSSL verify them against
 * auditAuth.clientCaFile (chain, validity, clientAuth purpose) without rejecting the handshake
 * (core/http/listen.ts), so that admission and probes stay open; this route reads the verdict.
 */
import { createHash, timingSafeEqual, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import type { RequestHandler } from 'express';
import type { Config } from '../core/config/index.js';
import { ConfigError, messageOf } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { HttpError } from './errors.js';

export interface AuditAuth {
  /** Trusted CAs for client certificates. */
  clientCas: X509Certificate[];
  /** SHA-256 of the expected bearer token (the token itself is not kept). */
  tokenHash: Buffer | undefined;
}

/** Reads the configured CA and token files; a missing or unreadable file is a ConfigError naming it. */
export function loadAuditAuth(
  config: Config['auditAuth'] | undefined,
  read: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): AuditAuth {
  const auth: AuditAuth = { clientCas: [], tokenHash: undefined };
  if (config?.clientCaFile) {
    let text: string;
    try {
      text = read(config.clientCaFile);
    } catch (err) {
      throw new ConfigError(`cannot read auditAuth.clientCaFile ${config.clientCaFile}: ${messageOf(err)}`);
    }
    const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (pems.length === 0)
      throw new ConfigError(`auditAuth.clientCaFile ${config.clientCaFile} holds no PEM certificate`);
    auth.clientCas = pems.map((p) => new X509Certificate(p));
  }
  if (config?.tokenFile) {
    let token: string;
    try {
      token = read(config.tokenFile).trim();
    } catch (err) {
      throw new ConfigError(`cannot read auditAuth.tokenFile ${config.tokenFile}: ${messageOf(err)}`);
    }
    if (token.length < 16)
      throw new ConfigError(
        `auditAuth.tokenFile ${config.tokenFile} holds a token shorter than 16 characters; use a long random one (openssl rand -hex 32)`,
      );
    auth.tokenHash = sha256(token);
  }
  return auth;
}

export function auditAuthRequired(auth: AuditAuth): boolean {
  return auth.clientCas.length > 0 || auth.tokenHash !== undefined;
}

export function auditAuthentication(auth: AuditAuth, log?: Logger): RequestHandler {
  if (!auditAuthRequired(auth)) {
    log?.warn(
      'POST /audit accepts unauthenticated requests: set auditAuth.clientCaFile or auditAuth.tokenFile (docs/audit-webhook.md)',
    );
    return (_req, _res, next) => next();
  }
  const challenge: Record<string, string> = auth.tokenHash
    ? { 'WWW-Authenticate': 'Bearer realm="etcd-autobackup audit"' }
    : {};
  return (req, _res, next) => {
    const reasons: string[] = [];
    if (auth.tokenHash) {
      const header = req.headers.authorization;
      const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (m && timingSafeEqual(sha256(m[1] as string), auth.tokenHash)) return next();
      reasons.push(header === undefined ? 'no bearer token' : 'the bearer token is wrong');
    }
    if (auth.clientCas.length > 0) {
      const problem = clientCertProblem(req.socket as Partial<TLSSocket>);
      if (problem === undefined) return next();
      reasons.push(problem);
    }
    next(
      new HttpError(
        401,
        `audit webhook authentication failed (${reasons.join('; ')}): the apiserver's audit kubeconfig must carry ${describe(auth)}`,
        challenge,
      ),
    );
  };
}

function describe(auth: AuditAuth): string {
  const ways = [];
  if (auth.clientCas.length > 0) ways.push('a client certificate signed by auditAuth.clientCaFile');
  if (auth.tokenHash) ways.push('the token of auditAuth.tokenFile');
  return ways.join(' or ');
}

/** OpenSSL's verification errors for a client certificate, in words. */
const VERIFY_ERRORS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'the client certificate has expired',
  CERT_NOT_YET_VALID: 'the client certificate is not valid yet',
  INVALID_PURPOSE: 'the client certificate is not for client authentication',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the client certificate is not signed by auditAuth.clientCaFile',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the client certificate is not signed by auditAuth.clientCaFile',
  SELF_SIGNED_CERT_IN_CHAIN: 'the client certificate is not signed by auditAuth.clientCaFile',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the client certificate is self-signed',
  CERT_SIGNATURE_FAILURE: "the client certificate's signature does not verify",
};

/** Why the connection's client certificate is not acceptable, or undefined when it is. */
export function clientCertProblem(socket: Partial<TLSSocket>): string | undefined {
  if (typeof socket.getPeerCertificate !== 'function')
    return 'no client certificate (plain HTTP: serve with TLS to use client certificates)';
  if (socket.authorized === true) return undefined;
  const peer = socket.getPeerCertificate();
  if (!peer || Object.keys(peer).length === 0) return 'no client certificate';
  const code = socket.authorizationError === undefined ? 'unknown' : String(socket.authorizationError);
  return VERIFY_ERRORS[code] ?? `the client certificate was not accepted (${code})`;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
