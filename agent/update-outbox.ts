import type { TrainingUpdateV1 } from '../actors/training-wire.js';

/** A training update's identity: one per job and round for a node. */
export const updateKey = (jobId: string, round: number): string => `${jobId}/${round}`;

/**
 * Training updates the agent owes the region, as ResultOutbox does for
 * results: each is kept from the moment local training ended until the region
 * said `accepted`, and sent again after every reconnect (the region counts one
 * update per node and round, so a repeat is harmless). Bounded: past
 * `maxOwed` the oldest is dropped and counted (its round closed long ago).
 */
export class UpdateOutbox {
  private readonly owed = new Map<string, TrainingUpdateV1>();
  private waiters: (() => void)[] = [];
  dropped = 0;
  accepted = 0;

  constructor(private readonly maxOwed: number) {}

  add(update: TrainingUpdateV1): void {
    const key = updateKey(update['job-id'], update.round);
    this.owed.delete(key);
    this.owed.set(key, update);
    while (this.owed.size > this.maxOwed) {
      const oldest = this.owed.keys().next().value as string;
      this.owed.delete(oldest);
      this.dropped++;
    }
  }

  settle(key: string): boolean {
    const had = this.owed.delete(key);
    if (had) this.accepted++;
    if (had && this.owed.size === 0) this.wake();
    return had;
  }

  /** Gives up on one update (refused for good: sending again cannot help). */
  abandon(key: string): void {
    if (this.owed.delete(key)) this.dropped++;
    if (this.owed.size === 0) this.wake();
  }

  get(key: string): TrainingUpdateV1 | undefined {
    return this.owed.get(key);
  }

  /** Oldest first. */
  all(): TrainingUpdateV1[] {
    return [...this.owed.values()];
  }

  get size(): number {
    return this.owed.size;
  }

  /** Resolves once nothing is owed, or after `timeoutMs` (false then). */
  async whenEmpty(timeoutMs: number): Promise<boolean> {
    if (this.owed.size === 0) return true;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }
}
