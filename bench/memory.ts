import { setImmediate as nextTurn } from 'node:timers/promises';
import { createActor, type AnyActorRef } from 'xstate';
import { createRegion } from '../actors/region.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import { nodeMachine } from '../machines/node.js';
import { reservationMachine } from '../machines/reservation.js';
import { ManualClock, realScheduler } from '../runtime/clock.js';
import { benchModels, fleetTelemetry } from './fleet-fixture.js';
import { figure, heapUsed, type Figure } from './measure.js';

const COUNT = 10_000;
const T0 = 1_767_225_600_000;

/** Heap per node actor and per live reservation actor inside a shard (actors, index, timers, bookkeeping). */
async function inShard(dir: string): Promise<{ perNode: number; perReservation: number }> {
  const store = new LmdbStore(dir, { noSync: true });
  const clock = new ManualClock(T0);
  const region = createRegion({ geozones: ['CAISO'], store, clock, scheduler: realScheduler, deliverForwards: false, onEffects: () => undefined });
  region.supervisor.recover();
  const telemetry = fleetTelemetry(COUNT, 'CAISO', T0).map((input) =>
    input.type === 'telemetry' ? { ...input, report: { ...input.report, gpuUtilization: 0.1, energySource: 'grid' as const } } : input,
  );
  await region.supervisor.whenIdle();
  const before = heapUsed();
  for (const input of telemetry) region.supervisor.submit(input, T0);
  await region.supervisor.whenIdle();
  await nextTurn();
  const afterNodes = heapUsed();
  for (let i = 0; i < COUNT; i++) {
    region.supervisor.submit(
      { type: 'inference', request: { requestId: `r-${i}`, modelId: benchModels[i % benchModels.length] as string, contextWindow: 4096, priority: 'normal', requesterGeozone: 'CAISO' }, triedGeozones: [] },
      T0 + 1,
    );
  }
  await region.supervisor.whenIdle();
  await nextTurn();
  const afterReservations = heapUsed();
  const live = region.supervisor.shard('CAISO').actorCount - COUNT;
  await store.close();
  return { perNode: (afterNodes - before) / COUNT, perReservation: (afterReservations - afterNodes) / live };
}

/** The raw cost: bare XState actors of the same machines with the same inputs. */
function bareActors(): { perNode: number; perReservation: number } {
  const telemetry = fleetTelemetry(COUNT, 'CAISO', T0);
  const keep: AnyActorRef[] = [];
  const before = heapUsed();
  for (const input of telemetry) {
    if (input.type !== 'telemetry') continue;
    const actor = createActor(nodeMachine, { input: { nodeId: input.nodeId, report: input.report, atMs: T0, silenceTimeoutMs: 30_000, reservationsPerGpu: 2 } });
    actor.start();
    keep.push(actor);
  }
  const afterNodes = heapUsed();
  for (let i = 0; i < COUNT; i++) {
    const actor = createActor(reservationMachine, {
      input: {
        requestId: `r-${i}`,
        modelId: 'llama-3-8b',
        contextWindow: 4096,
        priority: 'normal',
        requesterGeozone: 'CAISO',
        triedGeozones: [],
        receivedAtMs: T0,
        reservationTtlMs: 30_000,
        maxAttempts: 3,
      },
    });
    actor.start();
    actor.send({ type: 'route.reserved', atMs: T0, nodeId: 'n', candidates: 1, reason: 'bench' });
    actor.send({ type: 'dispatch', atMs: T0 });
    keep.push(actor);
  }
  const afterReservations = heapUsed();
  keep.length = 0;
  return { perNode: (afterNodes - before) / COUNT, perReservation: (afterReservations - afterNodes) / COUNT };
}

export async function memoryBench(dir: string): Promise<Figure[]> {
  const shard = await inShard(dir);
  const bare = bareActors();
  return [
    figure({
      bench: 'memory',
      metric: 'bytes_per_node_actor',
      unit: 'bytes',
      value: shard.perNode,
      baseline: { what: 'bare XState node actor', value: bare.perNode },
      extra: { actors: COUNT },
      goal: '<= 8 KB per node actor',
    }),
    figure({
      bench: 'memory',
      metric: 'bytes_per_live_reservation_actor',
      unit: 'bytes',
      value: shard.perReservation,
      baseline: { what: 'bare XState reservation actor', value: bare.perReservation },
      extra: { actors: COUNT },
    }),
  ];
}
