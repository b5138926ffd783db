import { CanonicalHasher } from './canonical.js';
import type { Clock, Scheduler } from './clock.js';
import { ArcError, ErrorCodes } from './errors.js';
import type { Journal, JournalStore } from './journal.js';
import { Shard, type ShardBehaviour, type ShardLimits } from './shard.js';
import type { SnapshotStore } from './snapshot-store.js';

export interface SupervisorOptions<I, E> {
  /** The shards (e.g. geozones) this process owns. */
  readonly shardIds: readonly string[];
  readonly journals: JournalStore;
  readonly snapshots?: SnapshotStore | undefined;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly limits?: Partial<ShardLimits>;
  readonly behaviour: (shardId: string) => ShardBehaviour<I, E>;
  /** Which shard an input belongs to (by its payload, never by a transport key). */
  readonly shardOf: (input: I) => string;
  /** Effects addressed to another shard of this process come back as inputs there. */
  readonly internalInput?: (effect: E) => { shardId: string; input: I } | undefined;
  /** Effects that leave the process, in order per shard, after their records are durable. */
  readonly onEffects: (effects: readonly E[], shardId: string) => void;
  readonly onFailure?: (error: Error, shardId: string) => void;
}

/**
 * Owns the shards of one process: recovers them, routes inputs to them by payload,
 * delivers shard-to-shard messages, and combines their state hashes.
 */
export class Supervisor<I, E> {
  private readonly shards = new Map<string, Shard<I, E>>();
  private readonly options: SupervisorOptions<I, E>;
  /** Shard-to-shard messages scheduled but not yet processed by their shard. */
  private internalPending = 0;

  constructor(options: SupervisorOptions<I, E>) {
    this.options = options;
    for (const shardId of [...options.shardIds].sort()) this.shards.set(shardId, this.build(shardId, options.journals.journal(shardId), options.snapshots));
  }

  private build(shardId: string, journal: Journal, snapshots: SnapshotStore | undefined): Shard<I, E> {
    return new Shard<I, E>({
      shardId,
      behaviour: this.options.behaviour(shardId),
      journal,
      snapshots,
      scheduler: this.options.scheduler,
      limits: this.options.limits,
      onEffects: (effects, from) => this.route(effects, from),
      onFailure: this.options.onFailure,
    });
  }

  /**
   * Takes over a shard at run time (ownership that moves, as with a Kafka
   * consumer group), with its own journal and snapshots. It is recovered before
   * it becomes visible, so no input or shard-to-shard message reaches it half-built.
   */
  add(
    shardId: string,
    stores: { journal: Journal; snapshots?: SnapshotStore | undefined },
    recovery: { useSnapshots?: boolean; skipEphemeral?: boolean } = {},
    /** Runs on the new shard before it recovers (to observe the records recovery applies). */
    prepare?: (shard: Shard<I, E>) => void,
  ): { shard: Shard<I, E>; fromSnapshotOffset: number; replayed: number; skipped: number } {
    if (this.shards.has(shardId)) throw new ArcError(ErrorCodes.INVARIANT, `shard '${shardId}' is already owned by this process`);
    const shard = this.build(shardId, stores.journal, stores.snapshots);
    prepare?.(shard);
    const recovered = shard.recover(recovery.useSnapshots ?? true, { skipEphemeral: recovery.skipEphemeral ?? false });
    // Keep the map in shard order: every walk over the shards (hash, timers, listings) is in that order.
    const entries = [...this.shards.entries(), [shardId, shard] as const].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.shards.clear();
    for (const [id, s] of entries) this.shards.set(id, s);
    return { shard, ...recovered };
  }

  /** Gives a shard up (its geozone was assigned elsewhere): it takes no more input from here; the caller drains it. */
  remove(shardId: string): Shard<I, E> | undefined {
    const shard = this.shards.get(shardId);
    this.shards.delete(shardId);
    return shard;
  }

  get shardIds(): string[] {
    return [...this.shards.keys()];
  }

  shard(shardId: string): Shard<I, E> {
    const shard = this.shards.get(shardId);
    if (shard === undefined) {
      throw new ArcError(ErrorCodes.UNKNOWN_SHARD, `this process owns no shard '${shardId}' (owned: ${this.shardIds.join(', ')})`);
    }
    return shard;
  }

  all(): Shard<I, E>[] {
    return [...this.shards.values()];
  }

  /** Recovers every shard from its latest snapshot plus journal tail. */
  recover(useSnapshots = true, options: { skipEphemeral?: boolean } = {}): { shardId: string; fromSnapshotOffset: number; replayed: number; skipped: number }[] {
    return this.all().map((shard) => ({ shardId: shard.shardId, ...shard.recover(useSnapshots, options) }));
  }

  /** Routes an input to its shard and processes it at `atMs` (the clock's time by default). */
  submit(input: I, atMs: number = this.options.clock.nowMs()): void {
    this.shard(this.options.shardOf(input)).process(input, atMs);
  }

  advanceTo(atMs: number): void {
    for (const shard of this.shards.values()) shard.advanceTo(atMs);
  }

  /** Earliest due time over all shards. */
  nextDueMs(): number | undefined {
    let due: number | undefined;
    for (const shard of this.shards.values()) {
      const next = shard.nextDueMs();
      if (next !== undefined && (due === undefined || next < due)) due = next;
    }
    return due;
  }

  /** Waits until every shard is durable and has released its effects (including shard-to-shard ones). */
  async whenIdle(): Promise<void> {
    for (;;) {
      const before = this.all().map((s) => s.lastOffset);
      await Promise.all(this.all().map((shard) => shard.whenIdle()));
      if (this.internalPending > 0) {
        await new Promise<void>((resolve) => this.options.scheduler.soon(resolve));
        continue;
      }
      const after = this.all().map((s) => s.lastOffset);
      if (before.every((offset, i) => offset === after[i])) return;
    }
  }

  async snapshotAll(): Promise<void> {
    await Promise.all(this.all().map((shard) => shard.snapshotNow()));
  }

  /** One hash over all shards: SHA-256 of the per-shard hashes in shard order. */
  stateHash(): string {
    const hasher = new CanonicalHasher();
    for (const shard of this.shards.values()) hasher.add({ shard: shard.shardId, hash: shard.stateHash() });
    return hasher.hex();
  }

  /**
   * Delivers a shard-to-shard message on a later turn (never re-entrantly inside
   * another shard's release). A busy shard gets it again shortly; it is not dropped.
   */
  private deliver(target: Shard<I, E>, input: I, attempt = 0): void {
    this.internalPending++;
    const run = (): void => {
      this.internalPending--;
      try {
        target.process(input, this.options.clock.nowMs());
      } catch (error) {
        if (error instanceof ArcError && error.code === ErrorCodes.OVERLOADED && attempt < 1_000) {
          this.options.scheduler.after(Math.min(1_000, 10 * 2 ** Math.min(attempt, 6)), () => this.deliver(target, input, attempt + 1));
          return;
        }
        this.options.onFailure?.(error instanceof Error ? error : new Error(String(error)), target.shardId);
      }
    };
    this.options.scheduler.soon(run);
  }

  private route(effects: readonly E[], from: string): void {
    const internal = this.options.internalInput;
    let external: E[] | undefined;
    for (const effect of effects) {
      const message = internal?.(effect);
      if (message === undefined) {
        (external ??= []).push(effect);
        continue;
      }
      const target = this.shards.get(message.shardId);
      if (target === undefined) {
        (external ??= []).push(effect); // owned elsewhere: the transport forwards it
        continue;
      }
      this.deliver(target, message.input);
    }
    if (external !== undefined) this.options.onEffects(external, from);
  }
}
