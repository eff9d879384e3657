/**
 * Load for the webhook benchmark over keep-alive loopback connections: closed loop (a few
 * connections, each sending its next request as soon as the last is answered, for throughput)
 * and open loop (a steady request rate whatever the answers do, for latency). Both are bounded
 * in count and in time and stop by themselves.
 */
import { Agent, request } from 'node:http';

export interface Answer {
  status: number;
  body: string;
  ms: number;
}

export function keepAliveAgent(maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
}

/** One POST of a JSON body; resolves when the whole answer is in. */
export function post(agent: Agent, url: URL, body: Buffer, timeoutMs = 30_000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            ms: performance.now() - started,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url.href} in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export interface LoadResult {
  /** Latency of each answered request, ms, in completion order. */
  latencies: number[];
  /** Answers that were not 2xx or failed, with a sample message. */
  errors: number;
  firstError?: string;
  /** From the first request to the last answer. */
  elapsedMs: number;
  /** Requests not sent because the time bound ran out. */
  unsent: number;
}

export interface ClosedLoopOptions {
  /** Where the i-th request goes (several webhook processes: round robin). */
  url: (i: number) => URL;
  /** Connections, each with one request in flight at a time. */
  concurrency: number;
  requests: number;
  maxMs: number;
  /** The body of the i-th request. */
  body: (i: number) => Buffer;
  /** Checks a 2xx answer; returns a message when it is wrong. */
  check?: (answer: Answer, i: number) => string | undefined;
}

export async function closedLoop(options: ClosedLoopOptions): Promise<LoadResult> {
  const agent = keepAliveAgent(options.concurrency);
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const started = performance.now();
  const deadline = started + options.maxMs;
  const fail = (msg: string) => {
    errors++;
    firstError ??= msg;
  };
  const lane = async () => {
    while (next < options.requests && performance.now() < deadline) {
      const i = next++;
      try {
        const answer = await post(agent, options.url(i), options.body(i));
        if (answer.status < 200 || answer.status > 299) fail(`HTTP ${answer.status}: ${answer.body.slice(0, 200)}`);
        else {
          const wrong = options.check?.(answer, i);
          if (wrong) fail(wrong);
        }
        latencies.push(answer.ms);
      } catch (err) {
        fail(err instanceof Error ? err.message : String(err));
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, lane));
  } finally {
    agent.destroy();
  }
  return { latencies, errors, firstError, elapsedMs: performance.now() - started, unsent: options.requests - next };
}

export interface OpenLoopOptions {
  url: (i: number) => URL;
  ratePerSec: number;
  durationMs: number;
  /** Connections the client may open per webhook process (the apiserver keeps a pool too). */
  maxSockets: number;
  body: (i: number) => Buffer;
  check?: (answer: Answer, i: number) => string | undefined;
}

export interface OpenLoopResult extends LoadResult {
  sent: number;
  /** Largest lag of the sender behind its schedule, ms: large values mean the client, not the server, was late. */
  maxSendLagMs: number;
}

/** Sends at `ratePerSec` for `durationMs`, checking the schedule every millisecond. */
export async function openLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const agent = keepAliveAgent(options.maxSockets);
  const latencies: number[] = [];
  const inflight = new Set<Promise<void>>();
  let errors = 0;
  let firstError: string | undefined;
  let sent = 0;
  let maxSendLagMs = 0;
  const total = Math.round((options.ratePerSec * options.durationMs) / 1000);
  const perMs = options.ratePerSec / 1000;
  const started = performance.now();
  const fail = (msg: string) => {
    errors++;
    firstError ??= msg;
  };
  const send = (i: number) => {
    const p = post(agent, options.url(i), options.body(i))
      .then((answer) => {
        latencies.push(answer.ms);
        if (answer.status < 200 || answer.status > 299) fail(`HTTP ${answer.status}: ${answer.body.slice(0, 200)}`);
        else {
          const wrong = options.check?.(answer, i);
          if (wrong) fail(wrong);
        }
      })
      .catch((err: unknown) => fail(err instanceof Error ? err.message : String(err)))
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };
  try {
    while (sent < total) {
      const now = performance.now();
      const due = Math.min(total, Math.floor((now - started) * perMs) + 1);
      if (due > sent + 1) maxSendLagMs = Math.max(maxSendLagMs, (due - sent - 1) / perMs);
      while (sent < due) send(sent++);
      await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(inflight);
  } finally {
    agent.destroy();
  }
  return {
    latencies,
    errors,
    firstError,
    elapsedMs: performance.now() - started,
    unsent: total - sent,
    sent,
    maxSendLagMs,
  };
}

/** The q-quantile (0..1) by nearest rank. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil(q * s.length)));
  return s[rank - 1] as number;
}
