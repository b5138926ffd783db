import { ArcError, ErrorCodes } from '../../runtime/errors.js';

/**
 * Per-key token buckets: each key may spend `burst` requests at once and earns
 * `ratePerSec` back, continuously, up to `burst`. Refused requests get the time
 * until the next token (answer 429 with `Retry-After`, ARC_ERR_RATE_LIMITED).
 *
 * Memory is bounded: at most `maxKeys` buckets are tracked. A bucket that has
 * refilled to `burst` is the same as no bucket, so idle ones are dropped first;
 * past the cap the least recently used bucket goes (that key merely starts over
 * with a full bucket). Keyed by authenticated key id, the number of keys is
 * bounded by the keys file anyway; the cap guards other uses (e.g. by address).
 * Times are arguments (no timers, no clock reads), so tests drive them.
 */

export interface RateLimiterOptions {
  readonly ratePerSec: number;
  readonly burst: number;
  /** Most buckets tracked at once (default 10 000). */
  readonly maxKeys?: number;
}

export type TakeResult = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

interface Bucket {
  tokens: number;
  updatedAtMs: number;
}

const OK: TakeResult = Object.freeze({ ok: true });

export class RateLimiter {
  readonly ratePerSec: number;
  readonly burst: number;
  readonly maxKeys: number;
  /** Map order is recency order: a bucket is moved to the end each time it is used. */
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: RateLimiterOptions) {
    this.ratePerSec = options.ratePerSec;
    this.burst = options.burst;
    this.maxKeys = options.maxKeys ?? 10_000;
    if (!Number.isFinite(this.ratePerSec) || this.ratePerSec <= 0) throw new ArcError(ErrorCodes.USAGE, `rate limit must be a positive number per second, got ${this.ratePerSec}`);
    if (!Number.isInteger(this.burst) || this.burst < 1) throw new ArcError(ErrorCodes.USAGE, `rate limit burst must be a positive integer, got ${this.burst}`);
    if (!Number.isInteger(this.maxKeys) || this.maxKeys < 1) throw new ArcError(ErrorCodes.USAGE, `maxKeys must be a positive integer, got ${this.maxKeys}`);
  }

  /** Number of buckets tracked now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Spends one token of `keyId`'s bucket, if it has one. */
  take(keyId: string, nowMs: number): TakeResult {
    let bucket = this.#buckets.get(keyId);
    if (bucket === undefined) {
      this.#makeRoom(nowMs);
      bucket = { tokens: this.burst, updatedAtMs: nowMs };
    } else {
      this.#buckets.delete(keyId);
      this.#refill(bucket, nowMs);
    }
    this.#buckets.set(keyId, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return OK;
    }
    return { ok: false, retryAfterMs: Math.max(1, Math.ceil(((1 - bucket.tokens) * 1000) / this.ratePerSec)) };
  }

  #refill(bucket: Bucket, nowMs: number): void {
    // A clock that steps back earns nothing (and takes nothing away).
    const elapsedMs = Math.max(0, nowMs - bucket.updatedAtMs);
    bucket.tokens = Math.min(this.burst, bucket.tokens + (elapsedMs * this.ratePerSec) / 1000);
    bucket.updatedAtMs = Math.max(bucket.updatedAtMs, nowMs);
  }

  /** Drops idle (full) buckets from the least recently used end, then the oldest if still at the cap. */
  #makeRoom(nowMs: number): void {
    for (const [keyId, bucket] of this.#buckets) {
      const atCap = this.#buckets.size >= this.maxKeys;
      if (!atCap && !this.#isFull(bucket, nowMs)) return;
      this.#buckets.delete(keyId);
    }
  }

  #isFull(bucket: Bucket, nowMs: number): boolean {
    return bucket.tokens + (Math.max(0, nowMs - bucket.updatedAtMs) * this.ratePerSec) / 1000 >= this.burst;
  }
}
