import type { Clock, Scheduler } from './clock.js';

/**
 * Keeps logical time moving in a live process when no input arrives: every
 * `everyMs` of real time it advances the shards to the clock's now, so
 * deadlines and ticks fire. Firing is late by at most `everyMs` of wall time,
 * but each firing is stamped with its exact deadline, so logical timing stays exact.
 */
export class LiveTimer {
  private cancel: (() => void) | undefined;
  private readonly clock: Clock;
  private readonly scheduler: Scheduler;
  private readonly everyMs: number;
  private readonly advance: (nowMs: number) => void;

  constructor(options: { clock: Clock; scheduler: Scheduler; everyMs: number; advance: (nowMs: number) => void }) {
    this.clock = options.clock;
    this.scheduler = options.scheduler;
    this.everyMs = options.everyMs;
    this.advance = options.advance;
  }

  start(): void {
    const loop = (): void => {
      this.advance(this.clock.nowMs());
      this.cancel = this.scheduler.after(this.everyMs, loop);
    };
    this.cancel = this.scheduler.after(this.everyMs, loop);
  }

  stop(): void {
    this.cancel?.();
    this.cancel = undefined;
  }
}
