/**
 * The SnapshotStore port. A shard snapshot is every live actor's persisted state
 * plus the shard's own state, with the journal offset it covers: recovery loads
 * the latest one and replays only the journal tail after it.
 */
export interface PersistedActor {
  readonly id: string;
  readonly kind: string;
  /** XState's persisted snapshot (JSON-safe). */
  readonly snapshot: unknown;
}

export interface ShardSnapshot {
  readonly shardId: string;
  /** The last journal offset reflected in this snapshot (-1 for an empty journal). */
  readonly offset: number;
  readonly atMs: number;
  readonly actors: readonly PersistedActor[];
  /** State the shard behaviour keeps outside actors (JSON-safe). */
  readonly behaviourState: unknown;
  /** The state hash at `offset`, so a restore can be verified (explicit snapshots only; periodic ones skip it). */
  readonly stateHash?: string;
}

export interface SnapshotStore {
  /** Stores a snapshot durably; older ones beyond the retention limit may be dropped. */
  save(snapshot: ShardSnapshot): Promise<void>;
  /** The newest snapshot of the shard whose offset is <= maxOffset (any when omitted). */
  latest(shardId: string, maxOffset?: number): ShardSnapshot | undefined;
  /** Offsets of the stored snapshots of a shard, ascending. */
  offsets(shardId: string): number[];
}
