/** Starting and stopping the HTTP(S) server on a `host:port` from config. */
import { readFile } from 'node:fs/promises';
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext, type Server as TlsServer } from 'node:tls';

export interface TlsServing {
  /** PEM serving certificate (chain) and its key. */
  cert: string;
  key: string;
  /**
   * PEM CA(s) that client certificates are verified against (auditAuth.clientCaFile). Clients are
   * asked for a certificate but neither required to send one nor rejected for a bad one: the
   * handshake stays open to everyone (admission, probes). OpenSSL verifies what is sent (chain,
   * validity, clientAuth purpose) and routes that need it read the verdict from the socket
   * (`authorized`, `authorizationError`; webhook/audit-auth.ts).
   */
  clientCa?: string | undefined;
}

/** Bounds on what one client can hold of the server (webhook.headersTimeout and the rest). */
export interface ServerLimits {
  headersTimeout: number;
  /** 0: no limit. */
  requestTimeout: number;
  keepAliveTimeout: number;
  maxConnections: number;
  /** How often Node checks the two timeouts above; they are enforced to about this precision. */
  checkIntervalMs?: number;
}

/** webhook.* defaults, for callers without a config. */
export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  keepAliveTimeout: 65_000,
  maxConnections: 512,
};

export interface ListenOptions {
  /** Serve HTTPS with this certificate; plain HTTP when unset. */
  tls?: TlsServing | undefined;
  limits?: ServerLimits;
}

export interface Listening {
  server: Server;
  /** The address actually bound (the port is real even when 0 was asked for). */
  url: string;
  /** Serves new connections with a renewed certificate; open connections keep theirs. */
  setCertificate(pem: { cert: string; key: string }): void;
  close(): Promise<void>;
}

function clientVerification(tls: TlsServing): { requestCert: boolean; ca?: string } {
  return tls.clientCa ? { requestCert: true, ca: tls.clientCa } : { requestCert: false };
}

export function parseListen(listen: string): { host: string; port: number } {
  const at = listen.lastIndexOf(':');
  const host = listen.slice(0, at).replace(/^\[|\]$/g, '') || '0.0.0.0';
  return { host, port: Number(listen.slice(at + 1)) };
}

export async function listen(
  handler: RequestListener,
  address: string,
  options: ListenOptions = {},
): Promise<Listening> {
  const { host, port } = parseListen(address);
  const tls = options.tls;
  if (tls) checkPair(tls);
  const limits = options.limits ?? DEFAULT_SERVER_LIMITS;
  // Node's own defaults let a client trickle a body for 5 minutes and open any number of sockets.
  const timeouts = {
    headersTimeout: limits.headersTimeout,
    requestTimeout: limits.requestTimeout,
    keepAliveTimeout: limits.keepAliveTimeout,
    connectionsCheckingInterval: limits.checkIntervalMs ?? 1_000,
  };
  const server: Server = tls
    ? createHttpsServer(
        {
          cert: tls.cert,
          key: tls.key,
          ...clientVerification(tls),
          rejectUnauthorized: false,
          // A handshake that never completes holds a socket too (Node's default: 120s).
          handshakeTimeout: limits.headersTimeout,
          ...timeouts,
        },
        handler,
      )
    : createServer(timeouts, handler);
  // The apiserver reuses connections to webhooks, so keepAliveTimeout stays longer than its idle timeout.
  server.keepAliveTimeout = limits.keepAliveTimeout;
  server.maxConnections = limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `cannot listen on ${address} (webhook.listen / --listen): ${err.code === 'EADDRINUSE' ? 'the address is in use' : err.message}`,
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const shownHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    server,
    url: `${tls ? 'https' : 'http'}://${shownHost}:${bound.port}`,
    setCertificate(pem) {
      if (!tls)
        throw new Error('setCertificate on a plain HTTP server: give webhook.tls or certs.manage to serve HTTPS');
      checkPair(pem);
      // The renewed context keeps verifying client certificates against the same CA.
      (server as unknown as TlsServer).setSecureContext({
        cert: pem.cert,
        key: pem.key,
        ...(tls.clientCa ? { ca: tls.clientCa } : {}),
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

/** Throws a readable error when the key does not belong to the certificate (or either is not PEM). */
function checkPair(pem: { cert: string; key: string }): void {
  try {
    createSecureContext({ cert: pem.cert, key: pem.key });
  } catch (err) {
    throw new Error(
      `the TLS serving certificate and key do not form a pair (webhook.tls.certFile / keyFile): ${(err as Error).message}`,
      { cause: err },
    );
  }
}

export async function readCertFiles(certFile: string, keyFile: string): Promise<{ cert: string; key: string }> {
  const read = (path: string, what: string) =>
    readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new Error(
        `cannot read the TLS ${what} ${path} (webhook.tls.${what === 'certificate' ? 'certFile' : 'keyFile'}): ${err.code ?? err.message}`,
      );
    });
  const [cert, key] = await Promise.all([read(certFile, 'certificate'), read(keyFile, 'key')]);
  checkPair({ cert, key });
  return { cert, key };
}

/**
 * Re-reads the certificate files every `intervalMs` and calls `onChange` with a new pair. Polling,
 * because a Secret volume is updated by swapping a symlink, which file watchers miss. A half-written
 * pair (cert renewed, key not yet) is skipped until both match.
 */
export function watchCertFiles(
  certFile: string,
  keyFile: string,
  options: {
    intervalMs: number;
    initial: { cert: string; key: string };
    onChange: (pem: { cert: string; key: string }) => void;
    onError: (err: Error) => void;
  },
): { stop(): void } {
  let last = options.initial;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    readCertFiles(certFile, keyFile)
      .then((pem) => {
        if (pem.cert === last.cert && pem.key === last.key) return;
        last = pem;
        options.onChange(pem);
      })
      .catch((err: unknown) => options.onError(err instanceof Error ? err : new Error(String(err))))
      .finally(() => {
        busy = false;
      });
  }, options.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
