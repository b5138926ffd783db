import type { Clock, Scheduler } from '../runtime/clock.js';
import type { EventQueue } from './event-queue.js';

/**
 * The Scheduler port on simulated time: `after` puts the callback on the
 * simulation's agenda instead of a wall-clock timer, so code written for the
 * live process (the HPC driver's polling) runs unchanged in a simulation.
 * The callbacks it ran start promise chains (the driver awaits its ports), so
 * the loop asks `takeRan()` after each event and lets those chains finish
 * before the clock moves on: their outcome lands at the time they were due.
 */
export class SimScheduler implements Scheduler {
  private ran = false;

  constructor(
    private readonly clock: Clock,
    private readonly queue: EventQueue,
  ) {}

  after(delayMs: number, fn: () => void): () => void {
    let cancelled = false;
    this.queue.schedule(this.clock.nowMs() + Math.max(0, delayMs), () => {
      if (cancelled) return;
      this.ran = true;
      fn();
    });
    return () => {
      cancelled = true;
    };
  }

  soon(fn: () => void): void {
    this.after(0, fn);
  }

  /** Whether a callback ran since the last call (and so promise chains may be waiting). */
  takeRan(): boolean {
    const ran = this.ran;
    this.ran = false;
    return ran;
  }
}

/** Lets every promise chain that can settle now settle (the simulated ports answer at once). */
export function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
