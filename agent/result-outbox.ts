import type { InferenceResultV1 } from '../actors/wire.js';

/**
 * Results the agent owes the region: each is kept from the moment its model call
 * ended until the region said `accepted` (durable in its journal), and sent again
 * after every reconnect. The region treats a repeated result as a duplicate, so
 * sending twice is safe; not sending is what would lose a request's outcome.
 *
 * Bounded: past `maxOwed` the oldest result is dropped and counted (a region gone
 * for that long has expired those reservations anyway).
 */
export class ResultOutbox {
  private readonly owed = new Map<string, InferenceResultV1>();
  private waiters: (() => void)[] = [];
  dropped = 0;
  accepted = 0;

  constructor(private readonly maxOwed: number) {}

  add(result: InferenceResultV1): void {
    this.owed.delete(result['request-id']);
    this.owed.set(result['request-id'], result);
    while (this.owed.size > this.maxOwed) {
      const oldest = this.owed.keys().next().value as string;
      this.owed.delete(oldest);
      this.dropped++;
    }
  }

  /** The region made it durable: no longer owed. */
  settle(requestId: string): boolean {
    const had = this.owed.delete(requestId);
    if (had) this.accepted++;
    if (had && this.owed.size === 0) this.wake();
    return had;
  }

  /** Gives up on one result (the region refused it for good: sending again cannot help). */
  abandon(requestId: string): void {
    if (this.owed.delete(requestId)) this.dropped++;
    if (this.owed.size === 0) this.wake();
  }

  has(requestId: string): boolean {
    return this.owed.has(requestId);
  }

  get(requestId: string): InferenceResultV1 | undefined {
    return this.owed.get(requestId);
  }

  /** Oldest first. */
  all(): InferenceResultV1[] {
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
