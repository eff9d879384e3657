/** HTTP basic auth for the dashboard and the manual snapshot endpoint, compared in constant time. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Config } from '../core/config/index.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function basicAuth(user: string, password: string, realm = 'etcd-autobackup'): RequestHandler {
  const expected = digest(`${user}:${password}`);
  return (req, res, next) => {
    const header = req.headers.authorization ?? '';
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    // Hashing both sides makes the comparison length-independent as well as constant-time.
    if (match && timingSafeEqual(digest(Buffer.from(match[1] as string, 'base64').toString('utf8')), expected)) {
      next();
      return;
    }
    res.set('WWW-Authenticate', `Basic realm="${realm}", charset="UTF-8"`);
    res.status(401).json({
      error: 'authentication required: use the dashboard user and password (dashboard.user / dashboard.password)',
    });
  };
}

/**
 * The gate of the operator-only routes (dashboard, manual snapshot): basic auth with the dashboard
 * credentials, or a 404 saying how to turn the route on when none are set.
 */
export function operatorGate(config: Pick<Config, 'dashboard'>, offMessage: string): RequestHandler {
  const { user, password } = config.dashboard;
  if (user && password) return basicAuth(user, password);
  return (_req, res) => {
    res.status(404).json({ error: offMessage });
  };
}
