/**
 * Connecting to etcd and choosing the member to snapshot from. Followers are preferred: a
 * snapshot reads the whole database and a follower spares the leader that load.
 */
import { Etcd3, type IOptions, type IStatusResponse } from 'etcd3';
import type { EtcdConfig } from '../core/config/index.js';
import { DialTimeout, etcdClientOptions, withinDialTimeout } from '../core/etcd-client.js';
import { messageOf, SnapshotError } from '../core/errors.js';

export interface MemberStatus {
  endpoint: string;
  /** Hex member id as etcdctl prints it. */
  memberId: string;
  clusterId: string;
  leaderId: string;
  isLeader: boolean;
  version: string;
  dbSize: number;
  /** Revision of the member's key space at the time of the status call. */
  revision: number;
  raftIndex: number;
  alarms: string[];
}

export interface ChosenMember {
  status: MemberStatus;
  client: Etcd3;
  /** Members that did not answer, with why; recorded for the operator. */
  unreachable: { endpoint: string; error: string }[];
}

/** Client options for one member; unreadable TLS files are a connect-stage failure. */
function memberClientOptions(etcd: EtcdConfig, endpoint: string): IOptions {
  try {
    return etcdClientOptions(etcd, [endpoint]);
  } catch (err) {
    throw new SnapshotError('connect', messageOf(err), { cause: err });
  }
}

const hex = (v: string | undefined) => (v ? BigInt(v).toString(16) : '0');

export async function memberStatus(client: Etcd3, endpoint: string): Promise<MemberStatus> {
  const s: IStatusResponse = await client.maintenance.status();
  const memberId = hex(s.header.member_id);
  const leaderId = hex(s.leader);
  return {
    endpoint,
    memberId,
    clusterId: hex(s.header.cluster_id),
    leaderId,
    isLeader: memberId === leaderId,
    version: s.version,
    dbSize: Number(s.dbSize),
    revision: Number(s.header.revision),
    raftIndex: Number(s.raftIndex),
    alarms: (s.errors ?? []).map(String),
  };
}

/**
 * Asks every endpoint for its status and returns a connected client to the best member:
 * a healthy follower (or the leader with preferLeader), else any healthy member.
 * Clients of the members not chosen are closed.
 */
export async function chooseMember(etcd: EtcdConfig): Promise<ChosenMember> {
  const attempts = await Promise.all(
    etcd.endpoints.map(async (endpoint) => {
      const client = new Etcd3(memberClientOptions(etcd, endpoint));
      try {
        return { endpoint, client, status: await withinDialTimeout(memberStatus(client, endpoint), etcd.dialTimeout) };
      } catch (err) {
        client.close();
        return { endpoint, error: describeConnectError(err, endpoint) };
      }
    }),
  );
  const healthy = attempts.filter((a): a is { endpoint: string; client: Etcd3; status: MemberStatus } => 'status' in a);
  const unreachable = attempts.filter((a): a is { endpoint: string; error: string } => 'error' in a);
  if (healthy.length === 0) {
    throw new SnapshotError(
      'connect',
      `no etcd member answered: ${unreachable.map((u) => `${u.endpoint}: ${u.error}`).join('; ')}`,
    );
  }
  const rank = (s: MemberStatus) => (s.alarms.length > 0 ? 2 : 0) + (s.isLeader === etcd.preferLeader ? 0 : 1);
  // Among equals, the most up-to-date member, so the snapshot is as fresh as it can be.
  healthy.sort((a, b) => rank(a.status) - rank(b.status) || b.status.raftIndex - a.status.raftIndex);
  const [best, ...rest] = healthy as [(typeof healthy)[number], ...typeof healthy];
  for (const other of rest) other.client.close();
  return { status: best.status, client: best.client, unreachable };
}

function describeConnectError(err: unknown, endpoint: string): string {
  if (err instanceof DialTimeout) return err.message;
  const msg = messageOf(err);
  if (/certificate|SSL|TLS|handshake|self.signed|unable to verify/i.test(msg)) {
    return `TLS failed (${msg}): check that etcd.cacert is the CA that signed ${endpoint}'s certificate and that etcd.cert/etcd.key are a client certificate it trusts`;
  }
  if (/deadline|timed? ?out/i.test(msg)) return `no answer within the dial timeout (${msg})`;
  return msg;
}
