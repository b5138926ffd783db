// A periodic snapshot is taken in slices while input goes on; what it stores is the
// state at the moment it began, and it reads back whole from LMDB (in parts).
import test from 'ava';
import { open } from 'lmdb';
import { createRegion } from '../../actors/region.js';
import type { RegionInput } from '../../actors/region-io.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { benchModels, fleetTelemetry } from '../../bench/fleet-fixture.js';
import { ManualClock, realScheduler } from '../../runtime/clock.js';
import { ErrorCodes } from '../../runtime/errors.js';
import { Slicer } from '../../runtime/sliced-work.js';
import { tempDir } from '../helpers/fixtures.js';

const GEOZONE = 'CAISO';
const T0 = 1_767_225_600_000;

function request(i: number): RegionInput {
  return {
    type: 'inference',
    request: { requestId: `req-${i}`, modelId: benchModels[i % benchModels.length] as string, contextWindow: 4096, priority: 'normal', requesterGeozone: GEOZONE },
    triedGeozones: [],
  };
}

test('a snapshot taken in slices while input goes on is the state when it began; stored in parts, it reads back the same and recovers the same state', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-slices-');
  try {
    const store = new LmdbStore(dir);
    const clock = new ManualClock(T0);
    // Each dispatch is answered, so requests end and the region remembers their ids (its own state).
    let results: RegionInput[] = [];
    const region = createRegion({
      geozones: [GEOZONE],
      store,
      clock,
      scheduler: realScheduler,
      deliverForwards: true,
      onEffects: (effects) => {
        for (const effect of effects) {
          if (effect.type === 'dispatch') results.push({ type: 'result', requestId: effect.requestId, nodeId: effect.nodeId, latencyMs: 1, status: 'completed' });
        }
      },
    });
    const answer = (): void => {
      const due = results;
      results = [];
      for (const result of due) region.supervisor.submit(result);
    };
    region.supervisor.recover();
    for (const input of fleetTelemetry(3_000, GEOZONE, T0)) region.supervisor.submit(input);
    for (let i = 0; i < 500; i++) region.supervisor.submit(request(i));
    await region.supervisor.whenIdle();
    answer();
    await region.supervisor.whenIdle();
    const shard = region.supervisor.shard(GEOZONE);
    const atStart = shard.capture(false);
    const remembered = (atStart.behaviourState as { ended: unknown[] }).ended.length;
    t.true(remembered > 300, `the region remembers ${remembered} ended requests`);
    const hashAtStart = shard.stateHash();

    // Input between every slice: each pause sends requests and moves the clock on.
    let next = 500;
    const slicer = new Slicer(
      () => {
        // New requests, and answers that end earlier ones: the remembered ids change under the snapshot.
        answer();
        for (let i = 0; i < 3; i++) region.supervisor.submit(request(next++));
        clock.set(clock.nowMs() + 100);
        return new Promise((resolve) => setImmediate(resolve));
      },
      0,
    );
    const sliced = await shard.captureInSlices(slicer);
    t.true(next > 600, `input went on during the snapshot (${next - 500} requests)`);
    t.deepEqual(sliced, atStart, 'the sliced snapshot is the state when it began, not what came after');
    await region.supervisor.whenIdle();
    answer();
    await region.supervisor.whenIdle();
    const after = shard.capture(false);
    t.notDeepEqual(after, atStart, 'the shard moved on meanwhile');
    t.true((after.behaviourState as { ended: unknown[] }).ended.length > remembered, 'and remembered more ended requests');

    await store.save(sliced);
    t.deepEqual(store.latest(GEOZONE), sliced, 'stored in parts, it reads back whole');
    await region.supervisor.whenIdle();
    await store.close();

    // A restart recovers from that snapshot plus the journal after it, to the live state.
    const liveHash = shard.stateHash();
    t.not(liveHash, hashAtStart);
    const reopened = new LmdbStore(dir);
    const restored = createRegion({ geozones: [GEOZONE], store: reopened, clock: new ManualClock(T0), scheduler: realScheduler, deliverForwards: false, onEffects: () => undefined });
    const [recovered] = restored.supervisor.recover();
    t.is(recovered?.fromSnapshotOffset, sliced.offset);
    t.is(restored.supervisor.shard(GEOZONE).stateHash(), liveHash);
    await reopened.close();
  } finally {
    cleanup();
  }
});

test('LMDB snapshot parts: the format before parts still reads, parts left without their snapshot are removed, a missing part is refused as tampering', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-slices-');
  try {
    const actors = Array.from({ length: 700 }, (_, i) => ({ id: `node/n${String(i).padStart(4, '0')}`, kind: 'node', snapshot: { value: 'online', context: { i } } }));
    const snapshot = { shardId: GEOZONE, offset: -1, atMs: T0, actors, behaviourState: { ended: [['r-1', T0]] } };
    let store = new LmdbStore(dir);
    // A snapshot as stored before parts: one value holding everything.
    await store.close();
    const raw = open({ path: `${dir}/${LmdbStore.fileName}`, maxDbs: 256, pageSize: 8192 });
    await raw.openDB({ name: 'snapshots' }).put([GEOZONE, -1], snapshot);
    await raw.close();
    store = new LmdbStore(dir);
    t.deepEqual(store.latest(GEOZONE), snapshot, 'an inline snapshot reads back');

    // Parts of a snapshot whose head never landed (a crash between them) are gone after the next save.
    await store.save({ ...snapshot, offset: -1 });
    await store.close();
    const rawAgain = open({ path: `${dir}/${LmdbStore.fileName}`, maxDbs: 256, pageSize: 8192 });
    const parts = rawAgain.openDB<unknown, [string, number, number]>({ name: 'snapshot-parts' });
    t.is([...parts.getKeys({ start: [GEOZONE, -1, -1], end: [GEOZONE, -1, 99] })].length, 3, '700 actors in parts of 256');
    await parts.put([GEOZONE, 5, 0], actors.slice(0, 2));
    await rawAgain.close();
    store = new LmdbStore(dir);
    t.deepEqual(store.offsets(GEOZONE), [-1]);
    await store.save({ ...snapshot, offset: -1, atMs: T0 + 1 });
    await store.close();
    const rawThird = open({ path: `${dir}/${LmdbStore.fileName}`, maxDbs: 256, pageSize: 8192 });
    const partsThird = rawThird.openDB<unknown, [string, number, number]>({ name: 'snapshot-parts' });
    t.deepEqual([...partsThird.getKeys({ start: [GEOZONE, 5, -1], end: [GEOZONE, 5, 99] })], [], 'the orphan part is removed');
    // A part taken away: the snapshot cannot be read whole, and says so.
    await partsThird.remove([GEOZONE, -1, 1]);
    await rawThird.close();
    store = new LmdbStore(dir);
    t.throws(() => store.latest(GEOZONE), { code: ErrorCodes.JOURNAL_TAMPERED, message: /lacks part 1 of 3/ });
    await store.close();
  } finally {
    cleanup();
  }
});

test('periodic snapshots come sooner in a small shard: after max(min, records per actor x actors) records, never later than snapshotEveryRecords', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-slices-');
  try {
    const store = new LmdbStore(dir);
    const clock = new ManualClock(T0);
    const limits = { snapshotEveryRecords: 1_000, snapshotMinRecords: 50, snapshotRecordsPerActor: 2 };
    const region = createRegion({ geozones: [GEOZONE], store, clock, scheduler: realScheduler, deliverForwards: true, limits, onEffects: () => undefined });
    region.supervisor.recover();
    // 100 nodes: 100 spawn records; then fresh telemetry, one record per report.
    const fleet = fleetTelemetry(100, GEOZONE, T0);
    for (const input of fleet) region.supervisor.submit(input);
    await region.supervisor.whenIdle();
    const reportAgain = async (times: number): Promise<void> => {
      for (let i = 0; i < times; i++) {
        clock.set(clock.nowMs() + 1_000);
        for (const input of fleetTelemetry(100, GEOZONE, clock.nowMs(), 100 + i)) region.supervisor.submit(input);
        await region.supervisor.whenIdle();
      }
    };
    await reportAgain(1);
    // The periodic snapshot is written in slices and then by LMDB's writer: wait until it lands.
    const deadline = Date.now() + 30_000;
    while (store.offsets(GEOZONE).length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    const shard = region.supervisor.shard(GEOZONE);
    t.is(shard.actorCount, 100);
    // 2 x 100 actors = 200 records: the first snapshot came once 200 records were written, not at 1,000.
    const offsets = store.offsets(GEOZONE);
    t.true(offsets.length >= 1, `a snapshot by offset ${shard.lastDurableOffset}: ${offsets.join(',')}`);
    t.true((offsets[0] ?? 0) >= 199 && (offsets[0] ?? 0) < 400, `the first snapshot at ${offsets[0]}`);
    await store.close();
  } finally {
    cleanup();
  }
});

test('closing the LMDB store while a snapshot is being written in slices waits for it or gives it up whole: no write after close, no half snapshot', async (t) => {
  const { dir, cleanup } = tempDir('arcnet-slices-');
  try {
    const actors = Array.from({ length: 20_000 }, (_, i) => ({ id: `node/n${String(i).padStart(5, '0')}`, kind: 'node', snapshot: { value: 'online', context: { i, models: ['a', 'b', 'c'] } } }));
    const snapshot = { shardId: GEOZONE, offset: -1, atMs: T0, actors, behaviourState: { ended: Array.from({ length: 5_000 }, (_, i) => [`r-${i}`, T0 + i]) } };
    const store = new LmdbStore(dir);
    const saving = store.save(snapshot);
    const outcome = saving.then(
      () => 'saved',
      (error: unknown) => (error as { code?: string }).code,
    );
    await store.close();
    const how = await outcome;
    t.true(how === 'saved' || how === ErrorCodes.SHARD_STOPPED, `the save ended as ${String(how)}`);
    await t.throwsAsync(() => store.save(snapshot), { code: ErrorCodes.SHARD_STOPPED }, 'a closed store takes no snapshot');

    const reopened = new LmdbStore(dir);
    const latest = reopened.latest(GEOZONE);
    if (how === 'saved') t.deepEqual(latest, snapshot);
    else t.is(latest, undefined, 'given up: no snapshot is visible, not a part of one');
    // The next save removes what a given-up one left behind, and reads back whole.
    await reopened.save({ ...snapshot, actors: actors.slice(0, 600) });
    t.deepEqual(reopened.latest(GEOZONE), { ...snapshot, actors: actors.slice(0, 600) });
    await reopened.close();
  } finally {
    cleanup();
  }
});
