/**
 * Messages the agent owes the region, by key: each is kept from the moment the
 * agent has it until the region said `accepted` (durable in its journal), and
 * sent again after every reconnect. The region treats a repeat as a duplicate,
 * so sending twice is safe; not sending is what would lose the outcome.
 *
 * Bounded: past `maxOwed` the oldest is dropped and counted (a region gone for
 * that long has moved past it anyway). Adding a key again replaces the old
 * message and makes it the newest.
 */
export class OwedOutbox<T> {
  private readonly owed = new Map<string, T>();
  private waiters: (() => void)[] = [];
  dropped = 0;
  accepted = 0;

  constructor(
    private readonly maxOwed: number,
    private readonly keyOf: (message: T) => string,
  ) {}

  add(message: T): void {
    const key = this.keyOf(message);
    this.owed.delete(key);
    this.owed.set(key, message);
    while (this.owed.size > this.maxOwed) {
      const oldest = this.owed.keys().next().value as string;
      this.owed.delete(oldest);
      this.dropped++;
    }
  }

  /** The region made it durable: no longer owed. */
  settle(key: string): boolean {
    const had = this.owed.delete(key);
    if (had) this.accepted++;
    if (had && this.owed.size === 0) this.wake();
    return had;
  }

  /** Gives up on one message (the region refused it for good: sending again cannot help). */
  abandon(key: string): void {
    if (this.owed.delete(key)) this.dropped++;
    if (this.owed.size === 0) this.wake();
  }

  has(key: string): boolean {
    return this.owed.has(key);
  }

  get(key: string): T | undefined {
    return this.owed.get(key);
  }

  /** Oldest first. */
  all(): T[] {
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
