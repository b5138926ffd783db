import { randomInt } from 'node:crypto';

/**
 * Exponential backoff with full jitter (a wait drawn uniformly from 0 to
 * min(max, min·2^attempt)), so a thousand agents that lost the same region do
 * not all knock on it in the same millisecond when it comes back. The bound
 * keeps a long outage from stretching the wait past `maxMs`.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    /** Uniform integer in [0, bound): crypto's by default; a seeded one in tests. */
    private readonly random: (bound: number) => number = (bound) => randomInt(bound),
  ) {
    if (!(minMs > 0 && maxMs >= minMs)) throw new RangeError(`backoff needs 0 < minMs <= maxMs, got ${minMs}, ${maxMs}`);
  }

  /** The next wait (ms): never below minMs/2, never above maxMs. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const floor = Math.floor(this.minMs / 2);
    return floor + this.random(Math.max(1, Math.floor(ceiling) - floor + 1));
  }

  /** After a connection that worked: start from the smallest wait again. */
  reset(): void {
    this.attempt = 0;
  }
}
