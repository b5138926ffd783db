import { createActor, type AnyActorRef, type AnyStateMachine } from 'xstate';
import { createRegion } from '../actors/region.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import { nodeMachine } from '../machines/node.js';
import { reservationMachine } from '../machines/reservation.js';
import { ManualClock, monotonicNowMs, realScheduler } from '../runtime/clock.js';
import { SHARD_ACTOR_ID, SPAWN_EVENT } from '../runtime/journal.js';
import { figure, type Figure } from './measure.js';

/** Replays a journal through the region's shards (full recovery path, every record's state checked). */
function replayThroughShards(dir: string, skipEphemeral = false): { events: number; perSec: number } {
  const store = new LmdbStore(dir);
  const region = createRegion({ geozones: store.shardIds(), store, clock: new ManualClock(0), scheduler: realScheduler, deliverForwards: false, onEffects: () => undefined });
  const start = monotonicNowMs();
  const recovered = region.supervisor.recover(false, { skipEphemeral });
  const ms = monotonicNowMs() - start;
  void store.close();
  const events = recovered.reduce((sum, r) => sum + r.replayed, 0);
  return { events, perSec: (events / ms) * 1000 };
}

const machines: Record<string, AnyStateMachine> = { node: nodeMachine, reservation: reservationMachine };

/** The raw cost: read the records from LMDB and send each to a bare XState actor, nothing else. */
function rawReadAndSend(dir: string): { events: number; perSec: number } {
  const store = new LmdbStore(dir);
  const actors = new Map<string, AnyActorRef>();
  let events = 0;
  const start = monotonicNowMs();
  for (const shardId of store.shardIds()) {
    for (const record of store.journal(shardId).read(0)) {
      events++;
      if (record.actorId === SHARD_ACTOR_ID) continue;
      if (record.event.type === SPAWN_EVENT) {
        const actor = createActor(machines[record.kind] as AnyStateMachine, { input: record.event['input'] });
        actor.start();
        actors.set(record.actorId, actor);
        continue;
      }
      const actor = actors.get(record.actorId) as AnyActorRef;
      actor.send(record.event);
      if ((actor.getSnapshot() as { status: string }).status !== 'active') actors.delete(record.actorId);
    }
  }
  const ms = monotonicNowMs() - start;
  void store.close();
  return { events, perSec: (events / ms) * 1000 };
}

export function replayBench(journalDir: string): Figure[] {
  replayThroughShards(journalDir); // warm up
  rawReadAndSend(journalDir);
  const replay = replayThroughShards(journalDir);
  const recovery = replayThroughShards(journalDir, true);
  const raw = rawReadAndSend(journalDir);
  return [
    figure({
      bench: 'replay',
      metric: 'events_per_sec',
      unit: 'events/s',
      value: replay.perSec,
      baseline: { what: 'raw LMDB reads + bare XState actor.send of the same records', value: raw.perSec },
      extra: { events: replay.events, mode: 'arcnet replay: every record re-run and its state checked' },
      goal: '>= 200,000 events/s',
    }),
    figure({
      bench: 'replay',
      metric: 'recovery_events_per_sec',
      unit: 'events/s',
      value: recovery.perSec,
      baseline: { what: 'raw LMDB reads + bare XState actor.send of the same records', value: raw.perSec },
      extra: { events: recovery.events, mode: 'recovery: actors born and ended within the journal are not re-run' },
      goal: '>= 200,000 events/s',
    }),
  ];
}
