/**
 * Maintenance.HashKV through the etcd3 client's own connection pool. The client's generated
 * `maintenance.hashKV` calls the gRPC method as "hashKV", but its proto loader names it "HashKV"
 * (camel-cased "hashKv"), so that wrapper fails with "client[method] is not a function"; this
 * calls the same channel (auth, TLS, failover) with the method's real name.
 */
import type { Etcd3, IHashKVRequest, IHashKVResponse } from 'etcd3';

interface Callable {
  exec(service: 'Maintenance', method: string, payload: IHashKVRequest): Promise<IHashKVResponse>;
}

export interface HashKV {
  hash: number;
  compactRevision: number;
  /** The member's revision when it answered. */
  currentRevision: number;
}

export async function hashKV(client: Etcd3, revision: number): Promise<HashKV> {
  const callable = Reflect.get(client.maintenance, 'client') as Callable | undefined;
  if (!callable || typeof callable.exec !== 'function') {
    throw new Error('this etcd3 client version has no call pool to send HashKV through');
  }
  const r = await callable.exec('Maintenance', 'HashKV', { revision });
  return {
    hash: Number(r.hash),
    compactRevision: Number(r.compact_revision),
    currentRevision: Number(r.header.revision),
  };
}
