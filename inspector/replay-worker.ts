import { parentPort, workerData } from 'node:worker_threads';
import type { Region } from '../actors/region.js';
import { KafkaJournalReader } from '../adapters/kafka/kafka-journal-reader.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import type { JournalStore } from '../runtime/journal.js';
import type { SnapshotStore } from '../runtime/snapshot-store.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { describePoint, rebuildAt, resolvePoint, type PointState, type ResolvedPoint } from './point-in-time.js';
import type { ReplayReply, ReplayRequest, ReplayWorkerData } from './replay-runner.js';

/**
 * Runs time-travel replays off the region's event loop. It opens the data
 * folder read-only (LMDB serves any number of readers beside the writer) and
 * keeps the last region it rebuilt: a point later on every shard (stepping
 * forward) continues from it record by record; anything else is rebuilt from
 * the nearest snapshot.
 */
const data = workerData as ReplayWorkerData;

type ReadStore = JournalStore & SnapshotStore & { close(): Promise<void> };
let store: ReadStore | undefined;
let last: { region: Region; point: ResolvedPoint; recovered: { shardId: string; fromSnapshotOffset: number; replayed: number }[] } | undefined;

async function openStore(ends: Readonly<Record<string, number>>): Promise<ReadStore> {
  // A journal's end is read when it is opened: reopen when the live region has written past it.
  const stale = store !== undefined && Object.entries(ends).some(([geozone, end]) => (store as ReadStore).journal(geozone).nextOffset() < end);
  if (store !== undefined && !stale) return store;
  await store?.close();
  if ('kafka' in data) {
    store = await KafkaJournalReader.open({ ...data.kafka, shardIds: Object.keys(ends), clientId: `arcnet-time-travel-${process.pid}` });
  } else {
    const encryptionKey = data.dataKeyHex === undefined ? undefined : Buffer.from(data.dataKeyHex, 'hex');
    store = new LmdbStore(data.path, { readOnly: true, ...(encryptionKey === undefined ? {} : { encryptionKey }) });
  }
  return store;
}

function continues(from: ResolvedPoint, to: ResolvedPoint): boolean {
  return Object.entries(to.offsets).every(([geozone, offset]) => offset >= (from.offsets[geozone] ?? -1));
}

async function answer(request: ReplayRequest): Promise<PointState> {
  const base = await openStore(request.ends);
  const point = resolvePoint(base, request.point);
  if (last !== undefined && continues(last.point, point)) {
    for (const shard of last.region.supervisor.all()) {
      const from = (last.point.offsets[shard.shardId] ?? -1) + 1;
      const to = point.offsets[shard.shardId] ?? -1;
      if (from > to) continue;
      for (const record of base.journal(shard.shardId).read(from)) {
        if (record.offset > to) break;
        shard.replayRecord(record);
      }
    }
    last = { ...last, point };
  } else {
    const { region, recovered } = rebuildAt(base, point, { centralShards: data.centralShards });
    last = { region, point, recovered };
  }
  return describePoint(base, point, last.region, last.recovered);
}

parentPort?.on('message', (request: ReplayRequest) => {
  answer(request).then(
    (state) => parentPort?.postMessage({ id: request.id, ok: true, state } satisfies ReplayReply),
    (error: unknown) => {
      const coded = error instanceof ArcError ? error : new ArcError(ErrorCodes.INVARIANT, error instanceof Error ? error.message : String(error));
      parentPort?.postMessage({ id: request.id, ok: false, code: coded.code, message: coded.message } satisfies ReplayReply);
    },
  );
});
