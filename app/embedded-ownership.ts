import { InProcessBus } from '../adapters/bus/in-process-bus.js';
import { inputToWire } from '../adapters/bus/input-wire.js';
import { effectToWire } from '../adapters/bus/topics.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { monotonicNowMs, realScheduler } from '../runtime/clock.js';
import { connectInputs, connectTrainingInputs, type EdgeCounters } from './bus-edge.js';
import type { Ownership, OwnershipHost, Takeover } from './ownership.js';

export interface EmbeddedOptions {
  readonly dataDir: string;
  /** Encrypts the data folder at rest (the folder must have been made with the same key). */
  readonly encryptionKey?: Buffer | undefined;
}

/**
 * The embedded default: every geozone of the region in one LMDB environment in
 * the data folder, owned from start to stop, with the in-process bus carrying
 * the seed's topics (inputs validated at the edge, effects published once durable).
 */
export function embeddedOwnership(host: OwnershipHost, options: EmbeddedOptions): { ownership: Ownership; store: LmdbStore } {
  const lmdb = new LmdbStore(options.dataDir, { encryptionKey: options.encryptionKey });
  const store = host.instrument(lmdb);
  const bus = new InProcessBus(realScheduler);
  const { region, log } = host;
  let stopping = false;
  let recovered = false;
  let unpublished = 0;
  const takeovers: Takeover[] = [];
  let edge: EdgeCounters = { accepted: 0, invalid: 0, refused: 0 };
  let trainingEdge: EdgeCounters = { accepted: 0, invalid: 0, refused: 0 };

  const ownership: Ownership = {
    mode: 'lmdb',
    stores: store,
    start: () => {
      const started = monotonicNowMs();
      for (const geozone of region.federation) {
        // Reservations that began and ended before the restart are not rebuilt one transition at a time.
        const report = region.addShard(geozone, store, { useSnapshots: true, skipEphemeral: true });
        takeovers.push({ geozone, ms: Math.round(monotonicNowMs() - started), replayed: report.replayed, fromSnapshotOffset: report.fromSnapshotOffset });
      }
      // Logical time never goes back, whatever the clock said when the folder was written.
      host.clock.raiseFloor(Math.max(0, ...region.supervisor.all().map((shard) => shard.nowMs)));
      edge = connectInputs(
        bus,
        host.role.inputs,
        (input) => {
          host.ingress(input, 'bus');
          region.supervisor.submit(input);
        },
        () => stopping,
        (error, topic) => log.warn({ err: error, topic }, 'input refused'),
      );
      // Federated rounds run in a region's geozone shards; the orchestrator publishes FederatedTasks, it does not take them.
      const training = host.role.name === 'region' ? host.training?.bind(host) : undefined;
      if (training !== undefined) trainingEdge = connectTrainingInputs(bus, training, () => stopping, (error, topic) => log.warn({ err: error, topic }, 'training input refused'));
      recovered = true;
      return Promise.resolve();
    },
    ready: () => recovered && !stopping,
    owned: () => region.supervisor.shardIds.map((geozone) => ({ geozone, ready: recovered })),
    timeTravel: () => ({ path: lmdb.path, ...(options.encryptionKey === undefined ? {} : { dataKeyHex: options.encryptionKey.toString('hex') }) }),
    send: (effects: readonly RegionEffect[]) => {
      for (const effect of effects) {
        const wire = effectToWire(effect);
        if (wire === undefined) continue;
        try {
          bus.publish(wire.topic, JSON.stringify(wire.message));
        } catch (error) {
          // A subscriber that stays behind loses messages, never the region's memory; the journal has them.
          unpublished++;
          log.warn({ err: error, topic: wire.topic }, 'effect not published');
        }
      }
    },
    publish: (input: RegionInput) => {
      if (stopping) return;
      const wire = inputToWire(input);
      // What has no seed topic (cancels, operator actions) goes to the region directly.
      if (wire === undefined) region.supervisor.submit(input);
      else bus.publish(wire.topic, JSON.stringify(wire.message));
    },
    backlog: () => bus.stats().waiting,
    takeovers: () => takeovers,
    counters: () => ({ ...edge, unpublished, trainingAccepted: trainingEdge.accepted, trainingInvalid: trainingEdge.invalid, trainingRefused: trainingEdge.refused }),
    drain: async () => {
      stopping = true;
      await region.supervisor.whenIdle();
      await region.supervisor.snapshotAll();
    },
    close: () => store.close(),
  };
  return { ownership, store: lmdb };
}
