/**
 * The put load of bench/delta.ts, in a child process of its own (forked with IPC) so that its CPU is
 * not the bench process's: in one process beside the sampling and bookkeeping, a few etcd3 clients
 * reached ~900 puts/s on a 2-core machine. Open loop: put i is due at start + i / rate whatever
 * the acknowledgements do, so a slow etcd shows as puts in flight, not as a lower request rate.
 * Every acknowledgement's revision and time go back to the bench, which computes the RPO.
 *
 * Protocol: the parent sends a {@link LoadJob}; this answers `{ type: 'ready' }` once each connection
 * has made a few puts, then waits for `{ type: 'start', at }` (a Date.now() in the future, shared by all
 * generators) and ends with one {@link LoadResult}.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';

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
  /** HTTP/2 connections (one etcd3 client each) this generator spreads its puts over. */
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
const VALUES = Array.from({ length: 64 }, () => randomBytes(768).toString('base64'));

async function run(job: LoadJob, startAt: number, clients: Etcd3[]): Promise<LoadResult> {
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
  const put = (i: number): void => {
    inFlight++;
    peakInFlight = Math.max(peakInFlight, inFlight);
    (clients[Math.floor(i / job.of) % clients.length] as Etcd3)
      .put(`/registry/bench/k${i % 5000}`)
      .value(VALUES[i % VALUES.length] as string)
      .exec()
      .then(
        (res) => {
          ackedAt.push(Date.now());
          revisions.push(Number(res.header.revision));
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
      put(next);
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
  let clients: Etcd3[] = [];
  let job: LoadJob | undefined;
  process.on('message', (msg: LoadJob | { type: 'start'; at: number }) => {
    if (msg.type === 'job') {
      job = msg;
      // A local subchannel pool each: grpc-js otherwise shares one HTTP/2 connection between clients
      // of the same target, which is what capped the rate.
      clients = Array.from(
        { length: msg.connections },
        () => new Etcd3({ hosts: [msg.endpoint], grpcOptions: { 'grpc.use_local_subchannel_pool': 1 } }),
      );
      // A few puts per connection first, so that neither connecting nor compiling lands in the schedule.
      const warmUp = async (c: Etcd3) => {
        for (let i = 0; i < 50; i++)
          await c
            .put('/registry/bench/warmup')
            .value(VALUES[i] as string)
            .exec();
      };
      void Promise.all(clients.map(warmUp)).then(
        () => process.send?.({ type: 'ready' }),
        (err: unknown) => {
          console.error(`load generator: etcd refused the warm-up put: ${String(err)}`);
          process.exit(1);
        },
      );
    } else if (job) {
      void run(job, msg.at, clients).then((result) => {
        clients.forEach((c) => c.close());
        process.send?.(result, () => process.exit(0));
      });
    }
  });
}

main();
