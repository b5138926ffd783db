import { SHARD_ACTOR_ID, type JournalStore } from '../../runtime/journal.js';
import type { ShardBehaviour } from '../../runtime/shard.js';
import type { RegionEffect, RegionInput } from '../region-io.js';
import { GLOBAL_VIEW_KIND, HPC_JOB_KIND } from './actors.js';
import { CentralBehaviour, defaultCentralConfig } from './central-behaviour.js';

/**
 * Whether a shard's journal is the central orchestrator's: its first record is
 * one only the orchestrator writes (a job's classification, or an hpc-job or
 * global-view actor). Lets a data folder be replayed or inspected without being
 * told which role wrote it.
 */
export function isCentralJournal(store: JournalStore, shardId: string): boolean {
  for (const record of store.journal(shardId).read(0)) {
    if (record.actorId === SHARD_ACTOR_ID) return record.event.type.startsWith('job.');
    return record.kind === HPC_JOB_KIND || record.kind === GLOBAL_VIEW_KIND;
  }
  return false;
}

/**
 * The behaviour factory that replays a folder's shards: the orchestrator's for
 * its journal, the region's (undefined) for geozones. Replay applies journaled
 * records only, so the orchestrator's configuration decides nothing here.
 */
export function replayBehaviours(store: JournalStore, shardIds: readonly string[]): (shardId: string) => ShardBehaviour<RegionInput, RegionEffect> | undefined {
  const central = new Set(shardIds.filter((id) => isCentralJournal(store, id)));
  return (shardId) => (central.has(shardId) ? new CentralBehaviour(defaultCentralConfig) : undefined);
}
