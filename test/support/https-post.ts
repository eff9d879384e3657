/**
 * A JSON POST over real TLS, as the kube-apiserver sends its audit and admission webhooks: the
 * server checked against `ca`, optionally a client certificate or a bearer token.
 */
import { request } from 'node:https';
import type { Pem } from '../../certs/pki.js';

export interface TlsAnswer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface TlsPostOptions {
  /** The CA the server's certificate must chain to. */
  ca: string;
  /** Client certificate and key to present. */
  cert?: Pem;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
}

export function postJsonTls(url: string, path: string, body: unknown, opts: TlsPostOptions): Promise<TlsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${path}`,
      {
        method: 'POST',
        ca: opts.ca,
        // A fresh connection per request: each test's client certificate is presented in its own handshake.
        agent: false,
        ...(opts.cert ? { cert: opts.cert.cert, key: opts.cert.key } : {}),
        headers: {
          'content-type': 'application/json',
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
