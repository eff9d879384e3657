/**
 * etcd client options from the `etcd` config section, shared by every role that talks to etcd
 * (the worker's snapshots, the webhook's watch), so TLS, auth and timeouts behave the same.
 */
import { readFileSync } from 'node:fs';
import type { IOptions } from 'etcd3';
import type { EtcdConfig } from './config/index.js';
import { ConfigError, messageOf } from './errors.js';

/** The HTTP/2 window of etcd calls, the snapshot's included (why 4 MiB: etcdClientOptions). */
export const FLOW_CONTROL_WINDOW = 4 * 1024 * 1024;

/**
 * Options for an `Etcd3` client on `endpoints` (one member, or several to fail over between).
 * Reads the TLS files now, so a missing or unreadable file fails at startup naming its field.
 */
export function etcdClientOptions(etcd: EtcdConfig, endpoints: readonly string[]): IOptions {
  const options: IOptions = { hosts: [...endpoints] };
  if (endpoints.some((e) => e.startsWith('https://'))) {
    options.credentials = {
      rootCertificate: readCredential(etcd.cacert, 'etcd.cacert', 'CA certificate'),
      ...(etcd.key ? { privateKey: readCredential(etcd.key, 'etcd.key', 'client key') } : {}),
      ...(etcd.cert ? { certChain: readCredential(etcd.cert, 'etcd.cert', 'client certificate') } : {}),
    };
  }
  // grpc-js's default 64 KiB HTTP/2 window leaves the snapshot stream idle half the time on a
  // round trip per window; etcdctl (Go) grows its window. The window is also what sits in memory
  // while storage backpressures the stream (an S3 part in flight): those chunks outlive a
  // scavenge, and once promoted they wait for a full GC, which V8 runs only ~64 MiB of external
  // memory later. 4 MiB kept an S3 upload at ~123 MiB RSS where 16 MiB reached ~189 MiB (with
  // core/young-generation.ts; README > Performance), and still covers a 1 GB/s link at 4 ms RTT.
  options.grpcOptions = { 'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW };
  if (etcd.username && etcd.password) options.auth = { username: etcd.username, password: etcd.password };
  // Streams have no deadline (a large snapshot takes minutes, a watch lives for days); unary
  // calls get the dial timeout.
  options.defaultCallOptions = (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + etcd.dialTimeout });
  return options;
}

function readCredential(path: string | undefined, field: string, what: string): Buffer {
  if (!path) {
    throw new ConfigError(`an https:// endpoint needs ${field} (the etcd ${what} file)`);
  }
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`cannot read ${field} ${path}: ${messageOf(err)}`);
  }
}

/** A call to etcd that got no answer within etcd.dialTimeout, all of the client's retries included. */
export class DialTimeout extends Error {
  override readonly name = 'DialTimeout';
}

/**
 * The call's own deadline is per attempt, and the client retries a member that never answers
 * (TCP accepted, no HTTP/2): without an overall deadline a 5 s dial timeout took ~18 s. Used by
 * the snapshot's member choice and the watch's revision reads alike.
 */
export async function withinDialTimeout<T>(call: Promise<T>, dialTimeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(new DialTimeout(`no answer within the dial timeout (etcd.dialTimeout ${dialTimeoutMs} ms)`)),
      dialTimeoutMs,
    );
  });
  try {
    return await Promise.race([call, late]);
  } finally {
    clearTimeout(timer);
    // The abandoned call rejects when its client is closed; nobody waits for it any more.
    call.catch(() => undefined);
  }
}
