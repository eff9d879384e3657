/**
 * The gate of the operator routes (dashboard, manual snapshot): HTTP basic auth compared in
 * constant time, failed logins rate-limited per client address, and state-changing requests
 * required to be ones a cross-site page cannot make without CORS (which this server never grants).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Config } from '../core/config/index.js';
import { LoginLimiter } from './login-limiter.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function basicAuth(
  user: string,
  password: string,
  limiter: LoginLimiter = new LoginLimiter(),
  realm = 'etcd-autobackup',
): RequestHandler {
  const expected = digest(`${user}:${password}`);
  return (req, res, next) => {
    const client = req.socket.remoteAddress ?? 'unknown';
    const wait = limiter.retryAfter(client);
    if (wait > 0) {
      res
        .status(429)
        .set('Retry-After', String(wait))
        .json({ error: `too many failed logins from this address; retry after ${wait}s` });
      return;
    }
    const header = req.headers.authorization ?? '';
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    // Hashing both sides makes the comparison length-independent as well as constant-time.
    if (match && timingSafeEqual(digest(Buffer.from(match[1] as string, 'base64').toString('utf8')), expected)) {
      next();
      return;
    }
    // A first visit without credentials is how browsers ask for the login prompt: not a failure.
    if (header !== '') limiter.failed(client);
    res.set('WWW-Authenticate', `Basic realm="${realm}", charset="UTF-8"`);
    res.status(401).json({
      error: 'authentication required: use the dashboard user and password (dashboard.user / dashboard.password)',
    });
  };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Methods a cross-site page can only send after a CORS preflight, which is never answered. */
const PREFLIGHTED_METHODS = new Set(['PUT', 'PATCH', 'DELETE']);
export const OPERATOR_HEADER = 'X-Etcd-Autobackup';

/**
 * Refuses a state-changing request that a cross-site HTML form could have sent with the browser's
 * cached basic-auth credentials: it must be JSON, carry X-Etcd-Autobackup or X-Requested-With, or
 * come from the dashboard's own page (Sec-Fetch-Site: same-origin, set by the browser).
 */
export function requireNonSimpleRequest(): RequestHandler {
  return (req, res, next) => {
    const method = req.method.toUpperCase();
    if (SAFE_METHODS.has(method) || PREFLIGHTED_METHODS.has(method)) return next();
    const json = /^application\/json\s*(;|$)/i.test(req.get('content-type') ?? '');
    const custom = req.get(OPERATOR_HEADER) !== undefined || req.get('X-Requested-With') !== undefined;
    const sameOrigin = req.get('Sec-Fetch-Site') === 'same-origin';
    if (json || custom || sameOrigin) return next();
    res.status(403).json({
      error: `${method} ${req.baseUrl}${req.path} needs a Content-Type: application/json body or an ${OPERATOR_HEADER} header (cross-site form posts are refused)`,
    });
  };
}

/**
 * Basic auth with the dashboard credentials plus the cross-site check, or a 404 saying how to turn
 * the route on when none are set.
 */
export function operatorGate(
  config: Pick<Config, 'dashboard'>,
  offMessage: string,
  limiter: LoginLimiter = new LoginLimiter(),
): RequestHandler[] {
  const { user, password } = config.dashboard;
  if (user && password) return [basicAuth(user, password, limiter), requireNonSimpleRequest()];
  return [
    (_req, res) => {
      res.status(404).json({ error: offMessage });
    },
  ];
}
