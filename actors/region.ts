import type { Clock, Scheduler } from '../runtime/clock.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import type { JournalStore } from '../runtime/journal.js';
import type { Shard, ShardBehaviour, ShardLimits } from '../runtime/shard.js';
import type { SnapshotStore } from '../runtime/snapshot-store.js';
import { Supervisor } from '../runtime/supervisor.js';
import { nodeActorId } from './node-actor.js';
import { defaultRegionConfig, RegionBehaviour, type RegionConfig } from './region-behaviour.js';
import type { RegionEffect, RegionInput } from './region-io.js';
import { countRecord, emptyStats, type RegionStats } from './region-stats.js';
import { reservationActorId } from './reservation-actor.js';
import { trainingActorId } from './training-actor.js';

export interface RegionOptions {
  /** Geozones whose shards this process owns from the start (more may be added, see Region.addShard). */
  readonly geozones: readonly string[];
  /** Every geozone of the federation (forwarding targets); defaults to the owned ones. */
  readonly federation?: readonly string[];
  /** Journals and snapshots of the shards owned from the start (none needed when `geozones` is empty). */
  readonly store?: JournalStore & SnapshotStore;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly config?: Partial<Omit<RegionConfig, 'geozones'>>;
  readonly limits?: Partial<ShardLimits>;
  /**
   * Deliver forwards between owned shards inside the process (live mode). A
   * simulation leaves this off and delivers them itself, in a fixed order.
   */
  readonly deliverForwards: boolean;
  readonly onEffects: (effects: readonly RegionEffect[], geozone: string) => void;
  readonly onFailure?: (error: Error, geozone: string) => void;
  /**
   * The behaviour a shard runs when it is not a region geozone's (the central
   * orchestrator's shard, app/role.ts); undefined: RegionBehaviour.
   */
  readonly behaviour?: ((shardId: string) => ShardBehaviour<RegionInput, RegionEffect> | undefined) | undefined;
  /** The shard of an input that is not a region's (the central orchestrator's inputs); undefined: the region decides. */
  readonly shardOf?: ((input: RegionInput) => string | undefined) | undefined;
}

export interface Region {
  readonly supervisor: Supervisor<RegionInput, RegionEffect>;
  readonly behaviours: ReadonlyMap<string, RegionBehaviour>;
  /** Counters folded from every record applied so far (live or replayed). */
  readonly stats: RegionStats;
  /** Every geozone of the federation (owned here or elsewhere), sorted. */
  readonly federation: readonly string[];
  /** The shard an input belongs to, by its payload. */
  shardOf(input: RegionInput): string;
  /** Takes over a geozone at run time (its own journal and snapshots) and recovers it before it takes input. */
  addShard(
    geozone: string,
    store: JournalStore & SnapshotStore,
    recovery?: { useSnapshots?: boolean; skipEphemeral?: boolean },
  ): { shard: Shard<RegionInput, RegionEffect>; fromSnapshotOffset: number; replayed: number; skipped: number };
  /** Gives a geozone up: its shard takes no more input here (the caller drains and closes it). */
  removeShard(geozone: string): Shard<RegionInput, RegionEffect> | undefined;
  /** Called with each shard added after creation (the ones from the start are in `supervisor.all()`). */
  onShardAdded(listener: (shard: Shard<RegionInput, RegionEffect>) => void): void;
}

/** Shard-to-shard effects as the inputs they become at the receiving shard. */
export function internalInput(effect: RegionEffect): { shardId: string; input: RegionInput } | undefined {
  if (effect.type === 'forward') {
    return {
      shardId: effect.toGeozone,
      input: { type: 'inference', request: effect.request, triedGeozones: effect.triedGeozones, targetGeozone: effect.toGeozone },
    };
  }
  if (effect.type === 'forward-ack') {
    return { shardId: effect.toGeozone, input: { type: 'forward.ack', requestId: effect.requestId, geozone: effect.toGeozone } };
  }
  return undefined;
}

/** Assembles the region: one shard per owned geozone, running RegionBehaviour. */
export function createRegion(options: RegionOptions): Region {
  const owned = [...new Set(options.geozones)].sort();
  const federation = [...new Set([...(options.federation ?? []), ...owned])].sort();
  if (federation.length === 0) throw new ArcError(ErrorCodes.USAGE, 'a region needs at least one geozone');
  if (owned.length > 0 && options.store === undefined) throw new ArcError(ErrorCodes.USAGE, 'a region that owns geozones from the start needs their store');
  /** Where an input nobody holds goes: the first shard owned now (it ignores what it does not know). */
  const firstOwned = (): string => supervisor.shardIds[0] ?? (federation[0] as string);
  const config: RegionConfig = { ...defaultRegionConfig, ...options.config, geozones: federation };
  const behaviours = new Map<string, RegionBehaviour>();
  const stats = emptyStats();

  const holderOf = (...actorIds: string[]): string => {
    for (const actorId of actorIds) for (const shard of supervisor.all()) if (shard.snapshotOf(actorId) !== undefined) return shard.shardId;
    return firstOwned(); // nobody holds it: the first shard ignores the input
  };

  /** The shard where the reservation lives and is not merely handed on (forwarding). */
  const ownerOf = (actorId: string): string => {
    for (const shard of supervisor.all()) {
      const snapshot = shard.snapshotOf(actorId);
      if (snapshot !== undefined && snapshot.value !== 'forwarding') return shard.shardId;
    }
    return holderOf(actorId);
  };

  const shardOf = (input: RegionInput): string => {
    const other = options.shardOf?.(input);
    if (other !== undefined) return other;
    switch (input.type) {
      case 'telemetry':
        return input.report.geozone;
      case 'inference':
        if (input.targetGeozone !== undefined) return input.targetGeozone;
        // Same geozone preferred; a requester from outside the federation starts at our first shard.
        // A geozone of the federation owned by another process is not ours to decide (UNKNOWN_SHARD).
        return federation.includes(input.request.requesterGeozone) ? input.request.requesterGeozone : firstOwned();
      case 'result':
        // The reservation's shard first: a node that changed geozone may linger in two shards.
        return holderOf(reservationActorId(input.requestId), nodeActorId(input.nodeId));
      case 'drain':
      case 'resume':
        return holderOf(nodeActorId(input.nodeId));
      case 'cancel':
        return ownerOf(reservationActorId(input.requestId));
      case 'forward.ack':
        return input.geozone;
      case 'training.job':
        return input.job.geozone;
      case 'training.update':
        return holderOf(trainingActorId(input.update.jobId));
      case 'training.aggregated':
      case 'training.checkpointed':
      case 'training.failed-step':
        return input.geozone;
      case 'job.submit':
      case 'summary.in':
      case 'hpc.observed':
      case 'job.cancel':
        // The orchestrator's inputs (its role routes them); a region's first shard ignores them.
        return firstOwned();
    }
  };

  const supervisor: Supervisor<RegionInput, RegionEffect> = new Supervisor<RegionInput, RegionEffect>({
    shardIds: owned,
    journals: options.store ?? { journal: () => { throw new ArcError(ErrorCodes.INVARIANT, 'no store for the shards owned from the start'); }, shardIds: () => [] },
    snapshots: options.store,
    clock: options.clock,
    scheduler: options.scheduler,
    limits: options.limits,
    behaviour: (geozone) => {
      const other = options.behaviour?.(geozone);
      if (other !== undefined) return other;
      const behaviour = new RegionBehaviour(geozone, config);
      behaviours.set(geozone, behaviour);
      return behaviour;
    },
    shardOf,
    internalInput: options.deliverForwards ? internalInput : undefined,
    onEffects: options.onEffects,
    onFailure: options.onFailure,
  });
  for (const shard of supervisor.all()) shard.observe((record) => countRecord(stats, record));
  const added: ((shard: Shard<RegionInput, RegionEffect>) => void)[] = [];
  return {
    supervisor,
    behaviours,
    stats,
    federation,
    shardOf,
    addShard: (geozone, store, recovery = {}) => {
      if (!federation.includes(geozone)) throw new ArcError(ErrorCodes.UNKNOWN_SHARD, `geozone '${geozone}' is not of this federation (${federation.join(', ')})`);
      // Counters fold every record the shard applies, recovered ones included (as for the shards from the start).
      return supervisor.add(geozone, { journal: store.journal(geozone), snapshots: store }, recovery, (shard) => {
        shard.observe((record) => countRecord(stats, record));
        for (const listener of added) listener(shard);
      });
    },
    removeShard: (geozone) => {
      const shard = supervisor.remove(geozone);
      behaviours.delete(geozone);
      return shard;
    },
    onShardAdded: (listener) => {
      added.push(listener);
    },
  };
}
