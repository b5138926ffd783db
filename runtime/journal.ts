/**
 * The Journal port. A shard's journal is an append-only sequence of records with
 * consecutive offsets starting at 0. Each record is one event applied to one actor
 * (or a shard-level note), stamped with the shard's logical time and the state the
 * actor moved to, so the log alone answers "what happened, when, and to what state".
 */
export interface JournalEvent {
  readonly type: string;
  readonly [key: string]: unknown;
}

export interface JournalRecord {
  /** Position in the shard's journal, 0-based and gap-free. */
  readonly offset: number;
  /** The shard's logical time when the event was applied, in ms. */
  readonly atMs: number;
  /** The actor the event was applied to (SHARD_ACTOR_ID for shard-level notes). */
  readonly actorId: string;
  /** The actor kind (machine) the actor runs. */
  readonly kind: string;
  readonly event: JournalEvent;
  /** The state value the actor reached, flattened ('a.b'); replay checks it. */
  readonly state: string;
}

/** Actor id used for shard-level records (summaries, notes) that belong to no actor. */
export const SHARD_ACTOR_ID = '@shard';
/** Event type that creates an actor; its `input` is the machine input. */
export const SPAWN_EVENT = '@spawn';

export interface Journal {
  /**
   * Appends records whose offsets continue the journal exactly. The promise
   * resolves only once the records are durable (the write-ahead point); it
   * rejects if they may not be.
   */
  append(records: readonly JournalRecord[]): Promise<void>;
  /** Records with offset >= fromOffset, in order. */
  read(fromOffset?: number): Iterable<JournalRecord>;
  /** The offset the next append must start at (0 for an empty journal). */
  nextOffset(): number;
}

/** Opens the journals of a store by shard id. */
export interface JournalStore {
  journal(shardId: string): Journal;
  /** Shard ids that have a journal in this store. */
  shardIds(): string[];
}
