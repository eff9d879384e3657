/**
 * A token bucket per client address for failed logins on the operator routes: a few wrong
 * passwords are free, a guessing run gets 429 until the bucket refills. Memory is bounded: past
 * `maxClients` addresses, the least recently failed one is forgotten.
 */

export interface LoginLimiterOptions {
  /** Failures allowed in a burst. */
  burst?: number;
  /** One failure is forgiven per this many milliseconds. */
  refillMs?: number;
  maxClients?: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class LoginLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly burst: number;
  private readonly refillMs: number;
  private readonly maxClients: number;
  private readonly now: () => number;

  constructor(options: LoginLimiterOptions = {}) {
    this.burst = options.burst ?? 10;
    this.refillMs = options.refillMs ?? 6_000;
    this.maxClients = options.maxClients ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Seconds until `client` may try again, or 0 when it may try now. */
  retryAfter(client: string): number {
    const tokens = this.tokens(client);
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * this.refillMs) / 1000);
  }

  /** Counts one failed login of `client`. */
  failed(client: string): void {
    const tokens = Math.max(0, this.tokens(client) - 1);
    this.buckets.delete(client);
    this.buckets.set(client, { tokens, at: this.now() });
    if (this.buckets.size > this.maxClients) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
  }

  private tokens(client: string): number {
    const b = this.buckets.get(client);
    if (b === undefined) return this.burst;
    return Math.min(this.burst, b.tokens + (this.now() - b.at) / this.refillMs);
  }
}
