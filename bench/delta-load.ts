/**
 * The put load of bench/delta.ts, in a child process of its own (forked with IPC) so that its CPU is
 * not the bench process's: in one process beside the sampling and bookkeeping, a few etcd3 clients
 * reached ~900 puts/s on a 2-core machine. The puts are gRPC calls written straight onto node:http2
 * sessions: through the etcd3 client (grpc-js, protobufjs) a put cost ~300 µs of CPU here, so 2,000
 * puts/s took most of a core away from etcd and the workers being measured. Open loop: put i is due at start + i / rate whatever
 * the acknowledgements do, so a slow etcd shows as puts in flight, not as a lower request rate.
 * Every acknowledgement's revision and time go back to the bench, which computes the RPO.
 *
 * Protocol: the parent sends a {@link LoadJob}; this answers `{ type: 'ready' }` once each connection
 * has made a few puts, then waits for `{ type: 'start', at }` (a Date.now() in the future, shared by all
 * generators) and ends with one {@link LoadResult}.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { connect, type ClientHttp2Session } from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';

/** What one generator sends: its share of one open-loop schedule split between several generators. */
export interface LoadJob {
  type: 'job';
  /** etcd client URL. */
  endpoint: string;
  /** Puts per second of the whole schedule (all generators together). */
  rate: number;
  /** Length of the schedule in seconds; puts not sent by its end are not sent. */
  seconds: number;
  /** This generator sends the puts whose index modulo `of` is `index`. */
  index: number;
  of: number;
  /** HTTP/2 connections this generator spreads its puts over. */
  connections: number;
  /** Puts this generator keeps in flight at most; past it, due puts wait (and show as a lower rate). */
  maxInFlight: number;
}

/** One generator's outcome: acknowledgements as parallel arrays (cheaper over IPC than objects). */
export interface LoadResult {
  type: 'result';
  revisions: number[];
  /** Date.now() at each acknowledgement. */
  ackedAt: number[];
  /** Puts due in the schedule but not sent by its end (the generator or etcd fell behind). */
  unsent: number;
  errors: number;
  firstError?: string;
  /** How late the latest-issued put left against its due time, in ms (a lagging generator shows here). */
  maxLagMs: number;
  peakInFlight: number;
  /** CPU seconds (user + system) this process spent during the schedule. */
  cpuSeconds: number;
}

const TICK_MS = 2;
// Random text: compresses far less than Kubernetes objects do, so stored sizes are an upper bound.
const VALUES = Array.from({ length: 64 }, () => Buffer.from(randomBytes(768).toString('base64')));

function varint(n: number): Buffer {
  const bytes: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) bytes.push((n % 0x80) | 0x80);
  bytes.push(n);
  return Buffer.from(bytes);
}

/** A length-prefixed gRPC message holding etcdserverpb.PutRequest { key = 1, value = 2 }. */
function putFrame(key: Buffer, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.of(0x0a), varint(key.length), key, Buffer.of(0x12), varint(value.length), value]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

/** Reads a varint at `at`; returns it and the offset after it. */
function readVarint(buf: Buffer, at: number): [number, number] {
  let n = 0;
  for (let scale = 1; at < buf.length; scale *= 0x80) {
    const b = buf[at++] as number;
    n += (b & 0x7f) * scale;
    if (b < 0x80) return [n, at];
  }
  throw new Error('truncated varint in a PutResponse');
}

/** PutResponse.header (field 1, ResponseHeader).revision (field 3) from a gRPC response body. */
function revisionOf(body: Buffer): number {
  const msg = body.subarray(5, 5 + body.readUInt32BE(1));
  for (let at = 0; at < msg.length;) {
    let tag: number;
    [tag, at] = readVarint(msg, at);
    if ((tag & 7) === 0) {
      [, at] = readVarint(msg, at);
      continue;
    }
    let len: number;
    [len, at] = readVarint(msg, at);
    if (tag >> 3 === 1) {
      // ResponseHeader's fields are all varints: cluster_id 1, member_id 2, revision 3, raft_term 4.
      const header = msg.subarray(at, at + len);
      for (let h = 0; h < header.length;) {
        let t: number;
        let v: number;
        [t, h] = readVarint(header, h);
        [v, h] = readVarint(header, h);
        if (t === 3 << 3) return v;
      }
    }
    at += len;
  }
  throw new Error('a PutResponse without a header revision');
}

/** One etcd KV.Put over an HTTP/2 session; resolves with the revision it was written at. */
function put(session: ClientHttp2Session, frame: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':method': 'POST',
      ':path': '/etcdserverpb.KV/Put',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks: Buffer[] = [];
    let status: string | undefined;
    let message = '';
    const onHeaders = (headers: IncomingHttpHeaders) => {
      const s = headers['grpc-status'];
      if (typeof s === 'string') status = s;
      const m = headers['grpc-message'];
      if (typeof m === 'string') message = decodeURIComponent(m);
    };
    req.on('response', onHeaders);
    req.on('trailers', onHeaders);
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', reject);
    req.on('close', () => {
      if (status !== '0') return reject(new Error(`etcd answered grpc-status ${status ?? 'none'} ${message}`));
      try {
        resolve(revisionOf(Buffer.concat(chunks)));
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
    req.end(frame);
  });
}

async function run(job: LoadJob, startAt: number, sessions: ClientHttp2Session[]): Promise<LoadResult> {
  const revisions: number[] = [];
  const ackedAt: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let inFlight = 0;
  let peakInFlight = 0;
  let maxLagMs = 0;
  const total = Math.floor(job.rate * job.seconds);
  const endAt = startAt + job.seconds * 1000;
  let settle: () => void = () => undefined;
  const send = (i: number): void => {
    inFlight++;
    peakInFlight = Math.max(peakInFlight, inFlight);
    put(
      sessions[Math.floor(i / job.of) % sessions.length] as ClientHttp2Session,
      putFrame(Buffer.from(`/registry/bench/k${i % 5000}`), VALUES[i % VALUES.length] as Buffer),
    )
      .then(
        (revision) => {
          ackedAt.push(Date.now());
          revisions.push(revision);
        },
        (err: unknown) => {
          errors++;
          firstError ??= String(err);
        },
      )
      .finally(() => {
        inFlight--;
        settle();
      });
  };

  await sleep(Math.max(0, startAt - Date.now()));
  const cpu0 = process.cpuUsage();
  // The next index of this generator's share.
  let next = job.index;
  while (next < total) {
    const now = Date.now();
    if (now >= endAt) break;
    const due = Math.min(total, Math.floor(((now - startAt) * job.rate) / 1000) + 1);
    for (; next < due && inFlight < job.maxInFlight; next += job.of) {
      maxLagMs = Math.max(maxLagMs, now - (startAt + (next * 1000) / job.rate));
      send(next);
    }
    await sleep(TICK_MS);
  }
  const unsent = next < total ? Math.ceil((total - next) / job.of) : 0;
  while (inFlight > 0) await new Promise<void>((resolve) => (settle = resolve));
  const cpu = process.cpuUsage(cpu0);
  return {
    type: 'result',
    revisions,
    ackedAt,
    unsent,
    errors,
    ...(firstError === undefined ? {} : { firstError }),
    maxLagMs,
    peakInFlight,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

function main(): void {
  if (!process.send) throw new Error('bench/delta-load.ts runs as a forked child of bench/delta.ts');
  let sessions: ClientHttp2Session[] = [];
  let job: LoadJob | undefined;
  process.on('message', (msg: LoadJob | { type: 'start'; at: number }) => {
    if (msg.type === 'job') {
      job = msg;
      // Several connections: etcd serves each on its own goroutines, and the etcd3 client's grpc-js
      // shares one connection between clients of the same target unless told otherwise.
      sessions = Array.from({ length: msg.connections }, () => connect(msg.endpoint));
      // A few puts per connection first, so that neither connecting nor compiling lands in the schedule.
      const warmUp = async (session: ClientHttp2Session) => {
        for (let i = 0; i < 50; i++)
          await put(session, putFrame(Buffer.from('/registry/bench/warmup'), VALUES[i] as Buffer));
      };
      void Promise.all(sessions.map(warmUp)).then(
        () => process.send?.({ type: 'ready' }),
        (err: unknown) => {
          console.error(`load generator: etcd refused the warm-up put: ${String(err)}`);
          process.exit(1);
        },
      );
    } else if (job) {
      void run(job, msg.at, sessions).then((result) => {
        sessions.forEach((s) => s.close());
        process.send?.(result, () => process.exit(0));
      });
    }
  });
}

main();
