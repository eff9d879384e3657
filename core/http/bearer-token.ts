/**
 * Bearer tokens read from files (auditAuth.tokenFile, admissionAuth.tokenFile,
 * metricsAuth.tokenFile) and checked in constant time. Only the token's SHA-256 is kept, so that
 * equal-length hashes are compared and the token itself never sits in a heap snapshot of the process.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RequestHandler } from 'express';
import { ConfigError, messageOf } from '../errors.js';

/** The SHA-256 of the token in `path`; an unreadable file or a short token is a ConfigError naming `field`. */
export function readTokenHash(path: string, field: string, read: (path: string) => string = readUtf8): Buffer {
  let token: string;
  try {
    token = read(path).trim();
  } catch (err) {
    throw new ConfigError(`cannot read ${field} ${path}: ${messageOf(err)}`);
  }
  if (token.length < 16)
    throw new ConfigError(
      `${field} ${path} holds a token shorter than 16 characters; use a long random one (openssl rand -hex 32)`,
    );
  return sha256(token);
}

/** Whether an Authorization header carries the bearer token whose hash is `hash`. */
export function bearerMatches(header: string | undefined, hash: Buffer): boolean {
  const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m !== null && timingSafeEqual(sha256(m[1] as string), hash);
}

/**
 * GET /metrics behind metricsAuth.tokenFile: without the token, 401 and nothing about the process.
 * Unset, /metrics stays open (the chart's NetworkPolicy or the listen address limit who reaches it).
 */
export function metricsAuthentication(auth: { tokenFile?: string | undefined } | undefined): RequestHandler {
  if (!auth?.tokenFile) return (_req, _res, next) => next();
  const hash = readTokenHash(auth.tokenFile, 'metricsAuth.tokenFile');
  return (req, res, next) => {
    if (bearerMatches(req.headers.authorization, hash)) return next();
    res
      .status(401)
      .set('WWW-Authenticate', 'Bearer realm="etcd-autobackup metrics"')
      .json({
        error: `metrics authentication failed (${req.headers.authorization === undefined ? 'no bearer token' : 'the bearer token is wrong'}): send the token of metricsAuth.tokenFile as Authorization: Bearer <token>`,
      });
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function readUtf8(path: string): string {
  return readFileSync(path, 'utf8');
}
