import type { RegionEffect, RegionInput } from '../actors/region-io.js';

/**
 * The messages between a region process's main thread and its shard workers
 * (app/shard-workers.ts, app/shard-worker.ts). Everything crosses by structured
 * clone: inputs are already validated plain objects, and one message carries a
 * whole batch (one per main-thread turn, one per released commit), so the cost
 * of a crossing is paid per batch, not per input.
 */

/** What a worker is started with (its `workerData`). */
export interface ShardWorkerData {
  readonly dataDir: string;
  /** The geozones this worker runs (never split: a geozone is in exactly one worker). */
  readonly geozones: readonly string[];
  /** Every geozone of the region: forwarding targets, whichever worker owns them. */
  readonly federation: readonly string[];
  /** Skip fsync on commit (scratch runs only). */
  readonly noSync: boolean;
  /** Advance the worker's shards to its clock this often (live deadlines); none when undefined (the caller advances). */
  readonly liveTimerEveryMs: number | undefined;
}

/** One input and, when the caller fixed it, its logical time (otherwise the worker's clock stamps it). */
export type TimedInput = readonly [input: RegionInput, atMs: number | undefined];

export type ToWorker =
  | { readonly type: 'inputs'; readonly inputs: readonly TimedInput[] }
  | { readonly type: 'advance'; readonly atMs: number }
  | { readonly type: 'idle'; readonly id: number }
  | { readonly type: 'hashes'; readonly id: number }
  | { readonly type: 'cpu'; readonly id: number }
  | { readonly type: 'stop'; readonly id: number };

export type FromWorker =
  | { readonly type: 'ready'; readonly recovered: readonly { geozone: string; replayed: number; fromSnapshotOffset: number }[]; readonly nowMs: number }
  | { readonly type: 'effects'; readonly geozone: string; readonly effects: readonly RegionEffect[] }
  | { readonly type: 'reply'; readonly id: number; readonly value: unknown }
  | { readonly type: 'failed'; readonly geozone: string; readonly message: string; readonly code: string | undefined };
