/**
 * The Clock port: the only place where the runtime reads time or schedules work.
 * Shards and machines see time as data (logical ms); only this module touches the
 * wall clock, so a simulation can swap in a ManualClock and replay stays exact.
 */
export interface Clock {
  /** Logical time in ms. Never decreases. */
  nowMs(): number;
}

export interface Scheduler {
  /** Runs `fn` after `delayMs` of real time (live mode only); returns a cancel function. */
  after(delayMs: number, fn: () => void): () => void;
  /** Runs `fn` once the current I/O turn is over (used to group journal commits). */
  soon(fn: () => void): void;
}

/**
 * Wall-clock time, made monotonic: if the system clock steps back (NTP), logical
 * time holds still instead of going backwards. `floorMs` lets a recovered shard
 * continue from the last journaled time even if the machine clock is behind it.
 */
export class WallClock implements Clock {
  private lastMs: number;

  constructor(floorMs = 0) {
    this.lastMs = floorMs;
  }

  nowMs(): number {
    const wall = Date.now();
    if (wall > this.lastMs) this.lastMs = wall;
    return this.lastMs;
  }

  raiseFloor(floorMs: number): void {
    if (floorMs > this.lastMs) this.lastMs = floorMs;
  }
}

/** Simulated time: jumps straight to the next input or deadline. */
export class ManualClock implements Clock {
  private currentMs: number;

  constructor(startMs = 0) {
    this.currentMs = startMs;
  }

  nowMs(): number {
    return this.currentMs;
  }

  set(ms: number): void {
    if (ms < this.currentMs) throw new RangeError(`ManualClock cannot go back from ${this.currentMs} to ${ms}`);
    this.currentMs = ms;
  }
}

export const realScheduler: Scheduler = {
  after(delayMs, fn) {
    const handle = setTimeout(fn, delayMs);
    return () => clearTimeout(handle);
  },
  soon(fn) {
    setImmediate(fn);
  },
};

/** Monotonic high-resolution reading for measurements (benchmarks, latency metrics), never for state. */
export function monotonicNowMs(): number {
  return performance.now();
}
