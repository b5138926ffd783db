import { actorsMessageSchema, type ActorsMessage } from '../adapters/console/console-messages.js';
import type { Region } from '../actors/region.js';
import type { JournalRecord } from '../runtime/journal.js';
import { countRecord, emptyStats, type RegionStats } from '../actors/region-stats.js';
import { countActors, type KindStateCounts } from './counts.js';

/**
 * The console's `actors` messages (schema in adapters/console/console-messages.ts):
 * once per second per geozone shard, how many actors of each kind are in each
 * state, and the rate of routed, rejected and expired requests over the last
 * interval. The inspector page draws them on the statecharts.
 */
export { actorsMessageSchema, type ActorsMessage };

export interface RequestRates {
  readonly routed: number;
  readonly rejected: number;
  readonly expired: number;
}

/** One `actors` message (timestamp from `nowMs`, wall-clock ms). */
export function actorCountsMessage(geozone: string, counts: KindStateCounts, rates: RequestRates, nowMs: number): ActorsMessage {
  return { type: 'actors', geozone, timestamp: new Date(nowMs).toISOString(), counts, rates: { ...rates } };
}

/**
 * Journal-derived counters per geozone, folded from every record each shard
 * applies from now on (the region's own `stats` sum all shards together).
 */
export class GeozoneStats {
  private readonly byGeozone = new Map<string, RegionStats>();

  constructor(region: Region) {
    const watch = (shard: { shardId: string; observe: (observer: (record: JournalRecord) => void) => void }): void => {
      const stats = emptyStats();
      this.byGeozone.set(shard.shardId, stats);
      shard.observe((record) => countRecord(stats, record));
    };
    for (const shard of region.supervisor.all()) watch(shard);
    // A geozone taken over later (Kafka ownership) is counted from its takeover on.
    region.onShardAdded(watch);
  }

  of(geozone: string): Readonly<RegionStats> {
    return this.byGeozone.get(geozone) ?? emptyStats();
  }
}

interface Previous {
  readonly atMs: number;
  readonly routed: number;
  readonly rejected: number;
  readonly expired: number;
}

/**
 * Makes the `actors` messages of a region. Call `tick(nowMs)` once per second
 * and publish what it returns; rates are the counter deltas since the
 * previous tick divided by the time between them (0 on the first tick).
 */
export class LiveActorCounts {
  private readonly stats: GeozoneStats;
  private readonly previous = new Map<string, Previous>();

  /** `stats`: counters the caller already folds for this region (one fold per record is enough). */
  constructor(
    private readonly region: Region,
    stats: GeozoneStats = new GeozoneStats(region),
  ) {
    this.stats = stats;
  }

  tick(nowMs: number): ActorsMessage[] {
    return this.region.supervisor.all().map((shard) => {
      const stats = this.stats.of(shard.shardId);
      const before = this.previous.get(shard.shardId);
      const seconds = before === undefined ? 0 : (nowMs - before.atMs) / 1000;
      const rate = (now: number, then: number | undefined): number => (seconds <= 0 || then === undefined ? 0 : Math.max(0, now - then) / seconds);
      const rates = {
        routed: rate(stats.routed, before?.routed),
        rejected: rate(stats.rejected, before?.rejected),
        expired: rate(stats.expired, before?.expired),
      };
      this.previous.set(shard.shardId, { atMs: nowMs, routed: stats.routed, rejected: stats.rejected, expired: stats.expired });
      return actorCountsMessage(shard.shardId, countActors(shard.actors()), rates, nowMs);
    });
  }
}
