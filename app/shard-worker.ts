import { parentPort, workerData } from 'node:worker_threads';
import { createRegion } from '../actors/region.js';
import type { RegionEffect } from '../actors/region-io.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import { realScheduler, WallClock } from '../runtime/clock.js';
import { ArcError } from '../runtime/errors.js';
import { LiveTimer } from '../runtime/live-timer.js';
import { threadCpuMs } from './thread-cpu.js';
import type { FromWorker, ShardWorkerData, ToWorker } from './shard-worker-protocol.js';

/**
 * One shard worker: its own event loop running the geozones it was given, each
 * with the same shard, behaviour and journal as on the main thread. It opens the
 * region's LMDB data folder itself (lmdb-js: one environment handle per thread,
 * the same files), so each geozone's journal and snapshots are exactly where a
 * single-threaded process would put them, and recovery is per worker: each
 * recovers only its geozones.
 */
const port = parentPort;
if (port === null) throw new Error('app/shard-worker.js runs only as a worker thread (see app/shard-workers.ts)');
const data = workerData as ShardWorkerData;
const post = (message: FromWorker): void => port.postMessage(message);

const store = new LmdbStore(data.dataDir, { noSync: data.noSync });
const clock = new WallClock();
const region = createRegion({
  geozones: [],
  federation: data.federation,
  clock,
  scheduler: realScheduler,
  // Forwards between geozones of this worker stay here; the rest go out as effects and the main thread delivers them.
  deliverForwards: true,
  onEffects: (effects: readonly RegionEffect[], geozone: string) => post({ type: 'effects', geozone, effects }),
  onFailure: (error, geozone) => post({ type: 'failed', geozone, message: error.message, code: error instanceof ArcError ? error.code : undefined }),
});
const recovered = [...data.geozones].sort().map((geozone) => {
  const report = region.addShard(geozone, store, { useSnapshots: true, skipEphemeral: true });
  return { geozone, replayed: report.replayed, fromSnapshotOffset: report.fromSnapshotOffset };
});
// Logical time never goes back, whatever the clock said when the folder was written.
clock.raiseFloor(Math.max(0, ...region.supervisor.all().map((shard) => shard.nowMs)));
const timer = data.liveTimerEveryMs === undefined ? undefined : new LiveTimer({ clock, scheduler: realScheduler, everyMs: data.liveTimerEveryMs, advance: (now) => region.supervisor.advanceTo(now) });
timer?.start();

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'inputs':
      for (const [input, atMs] of message.inputs) {
        try {
          region.supervisor.submit(input, atMs ?? clock.nowMs());
        } catch (error) {
          // Refused (a full queue, an unknown shard): the main thread reports it; the other inputs go on.
          const geozone = safeShardOf(input);
          post({ type: 'failed', geozone, message: error instanceof Error ? error.message : String(error), code: error instanceof ArcError ? error.code : undefined });
        }
      }
      return;
    case 'advance':
      region.supervisor.advanceTo(message.atMs);
      return;
    case 'idle':
      // Replies after every effect of the work so far has been posted (messages keep their order).
      void region.supervisor.whenIdle().then(() => post({ type: 'reply', id: message.id, value: lastOffsets() }));
      return;
    case 'hashes':
      post({ type: 'reply', id: message.id, value: Object.fromEntries(region.supervisor.all().map((shard) => [shard.shardId, shard.stateHash()])) });
      return;
    case 'cpu':
      post({ type: 'reply', id: message.id, value: threadCpuMs() ?? null });
      return;
    case 'stop':
      timer?.stop();
      void stop().then(
        () => {
          post({ type: 'reply', id: message.id, value: lastOffsets() });
          port.close();
        },
        (error: unknown) => post({ type: 'reply', id: message.id, value: { error: error instanceof Error ? error.message : String(error) } }),
      );
      return;
  }
});
post({ type: 'ready', recovered, nowMs: clock.nowMs() });

async function stop(): Promise<void> {
  await region.supervisor.whenIdle();
  await region.supervisor.snapshotAll();
  await store.close();
}

function lastOffsets(): Record<string, number> {
  return Object.fromEntries(region.supervisor.all().map((shard) => [shard.shardId, shard.lastDurableOffset]));
}

function safeShardOf(input: Parameters<typeof region.shardOf>[0]): string {
  try {
    return region.shardOf(input);
  } catch {
    return data.geozones[0] ?? '';
  }
}
