import { CentralBehaviour, defaultCentralConfig } from '../actors/central/central-behaviour.js';
import { replayBehaviours } from '../actors/central/central-journal.js';
import { createRegion, type Region } from '../actors/region.js';
import { offsetAtTime } from '../actors/node-history.js';
import { ManualClock, realScheduler } from '../runtime/clock.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import type { Journal, JournalRecord, JournalStore } from '../runtime/journal.js';
import type { ShardSnapshot, SnapshotStore } from '../runtime/snapshot-store.js';
import { countActors, type KindStateCounts } from './counts.js';

/**
 * Time travel as replay. A point in a region's past is either a logical time T
 * (every shard at its last record with atMs <= T) or an offset N of one
 * geozone G (G at N; the others at their last record no later than G's record
 * N). The region as of that point is rebuilt exactly as recovery rebuilds it
 * after a crash, on a read-only view of the store whose journals end at the
 * point and whose newest snapshot is the newest one at or before it: so the
 * state hash of a point is the one a region stopped there would have had.
 */
export type TimePoint = { readonly atMs: number } | { readonly geozone: string; readonly offset: number };

export interface ResolvedPoint {
  /** The logical time of the point (for an offset point, the time of that record). */
  readonly atMs: number;
  /** Each shard's last included offset (-1: nothing of that shard yet). */
  readonly offsets: Readonly<Record<string, number>>;
  /** The geozone an offset point was given in, if any. */
  readonly geozone?: string;
}

export function resolvePoint(store: JournalStore, point: TimePoint): ResolvedPoint {
  const geozones = store.shardIds();
  let atMs: number;
  let anchor: { geozone: string; offset: number } | undefined;
  if ('offset' in point) {
    if (!geozones.includes(point.geozone)) throw new ArcError(ErrorCodes.NOT_FOUND, `no journal for geozone '${point.geozone}' (have ${geozones.join(', ')})`);
    const journal = store.journal(point.geozone);
    const last = journal.nextOffset() - 1;
    if (!Number.isInteger(point.offset) || point.offset < 0 || point.offset > last) {
      throw new ArcError(ErrorCodes.VALIDATION, `offset ${point.offset} is outside ${point.geozone}'s journal (0..${last})`);
    }
    atMs = (recordAt(journal, point.offset) as JournalRecord).atMs;
    anchor = { geozone: point.geozone, offset: point.offset };
  } else {
    if (!Number.isFinite(point.atMs)) throw new ArcError(ErrorCodes.VALIDATION, `time must be a number of ms, got ${point.atMs}`);
    atMs = point.atMs;
  }
  const offsets: Record<string, number> = {};
  for (const geozone of geozones) {
    offsets[geozone] = anchor?.geozone === geozone ? anchor.offset : offsetAtTime(store.journal(geozone), atMs);
  }
  return { atMs, offsets, ...(anchor === undefined ? {} : { geozone: anchor.geozone }) };
}

export function recordAt(journal: Journal, offset: number): JournalRecord | undefined {
  for (const record of journal.read(offset)) return record.offset === offset ? record : undefined;
  return undefined;
}

/** A journal that ends at `lastOffset` and refuses writes. */
class JournalUpTo implements Journal {
  constructor(
    private readonly base: Journal,
    private readonly lastOffset: number,
  ) {}

  append(): Promise<void> {
    return Promise.reject(new ArcError(ErrorCodes.INVARIANT, 'a point-in-time view is read-only'));
  }

  *read(fromOffset = 0): Iterable<JournalRecord> {
    if (fromOffset > this.lastOffset) return;
    for (const record of this.base.read(fromOffset)) {
      if (record.offset > this.lastOffset) return;
      yield record;
    }
  }

  nextOffset(): number {
    return Math.min(this.lastOffset + 1, this.base.nextOffset());
  }
}

/** The store as of a point: journals end there, and only snapshots at or before it are seen. */
export class PointInTimeStore implements JournalStore, SnapshotStore {
  constructor(
    private readonly base: JournalStore & SnapshotStore,
    private readonly lastOffsets: Readonly<Record<string, number>>,
  ) {}

  private end(shardId: string): number {
    return this.lastOffsets[shardId] ?? -1;
  }

  journal(shardId: string): Journal {
    return new JournalUpTo(this.base.journal(shardId), this.end(shardId));
  }

  shardIds(): string[] {
    return this.base.shardIds();
  }

  latest(shardId: string, maxOffset = Number.MAX_SAFE_INTEGER): ShardSnapshot | undefined {
    return this.base.latest(shardId, Math.min(maxOffset, this.end(shardId)));
  }

  offsets(shardId: string): number[] {
    return this.base.offsets(shardId).filter((offset) => offset <= this.end(shardId));
  }

  save(): Promise<void> {
    return Promise.reject(new ArcError(ErrorCodes.INVARIANT, 'a point-in-time view is read-only'));
  }
}

export interface PointState {
  readonly point: ResolvedPoint;
  /** The region's state hash at the point (what `arcnet replay --until` prints). */
  readonly stateHash: string;
  readonly shards: readonly {
    readonly geozone: string;
    readonly offset: number;
    /** The shard's logical time at the point. */
    readonly atMs: number;
    readonly stateHash: string;
    readonly counts: KindStateCounts;
    /** The record at the shard's offset (the last event included), if any. */
    readonly record: JournalRecord | undefined;
  }[];
  /** Offset of the snapshot each shard started from (-1: from the journal's start). */
  readonly fromSnapshot: Readonly<Record<string, number>>;
  readonly replayedRecords: number;
}

/** Rebuilds the region at a point (from the nearest snapshot unless `useSnapshots` is false). */
export function rebuildAt(
  store: JournalStore & SnapshotStore,
  point: ResolvedPoint,
  options: { useSnapshots?: boolean; centralShards?: readonly string[] | undefined } = {},
): { region: Region; recovered: { shardId: string; fromSnapshotOffset: number; replayed: number }[] } {
  const view = new PointInTimeStore(store, point.offsets);
  const central = new Set(options.centralShards ?? []);
  const region = createRegion({
    // Told which shards are the orchestrator's (a live process), or found from their journals (a data folder).
    // Replay applies journaled records only: the orchestrator's configuration decides nothing here.
    behaviour: options.centralShards === undefined ? replayBehaviours(store, store.shardIds()) : (shardId) => (central.has(shardId) ? new CentralBehaviour(defaultCentralConfig) : undefined),
    geozones: store.shardIds(),
    store: view,
    clock: new ManualClock(0),
    scheduler: realScheduler,
    deliverForwards: false,
    onEffects: () => undefined,
  });
  const recovered = region.supervisor.recover(options.useSnapshots !== false);
  return { region, recovered };
}

/** What the inspector and `arcnet replay --until` report about a point. */
export function describePoint(store: JournalStore & SnapshotStore, point: ResolvedPoint, region: Region, recovered: readonly { shardId: string; fromSnapshotOffset: number; replayed: number }[]): PointState {
  return {
    point,
    stateHash: region.supervisor.stateHash(),
    shards: region.supervisor.all().map((shard) => {
      const offset = point.offsets[shard.shardId] ?? -1;
      return {
        geozone: shard.shardId,
        offset,
        atMs: shard.nowMs,
        stateHash: shard.stateHash(),
        counts: countActors(shard.actors()),
        record: offset < 0 ? undefined : recordAt(store.journal(shard.shardId), offset),
      };
    }),
    fromSnapshot: Object.fromEntries(recovered.map((r) => [r.shardId, r.fromSnapshotOffset])),
    replayedRecords: recovered.reduce((sum, r) => sum + r.replayed, 0),
  };
}

/** Resolves, rebuilds and describes a point in one go. */
export function stateAt(store: JournalStore & SnapshotStore, point: TimePoint, options: { useSnapshots?: boolean } = {}): PointState {
  const resolved = resolvePoint(store, point);
  const { region, recovered } = rebuildAt(store, resolved, options);
  return describePoint(store, resolved, region, recovered);
}
