import test from 'ava';
import { createRegion, type Region } from '../../actors/region.js';
import type { RegionEffect, RegionInput } from '../../actors/region-io.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import type { NodeContext, NodeReport } from '../../machines/node.js';
import type { ReservationContext } from '../../machines/reservation.js';
import { ManualClock, realScheduler } from '../../runtime/clock.js';
import { ArcError } from '../../runtime/errors.js';
import type { JournalRecord } from '../../runtime/journal.js';
import { report, tempDir } from '../helpers/fixtures.js';

const T0 = 1_767_225_600_000;

async function withRegion(run: (r: { region: Region; clock: ManualClock; records: JournalRecord[]; effects: RegionEffect[]; at: (ms: number, input?: RegionInput) => Promise<void> }) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir();
  const store = new LmdbStore(dir);
  const clock = new ManualClock(T0);
  const effects: RegionEffect[] = [];
  const region = createRegion({ geozones: ['CAISO'], store, clock, scheduler: realScheduler, deliverForwards: true, onEffects: (e) => effects.push(...e) });
  region.supervisor.recover();
  const records: JournalRecord[] = [];
  region.supervisor.shard('CAISO').observe((record) => records.push(record));
  const at = async (ms: number, input?: RegionInput): Promise<void> => {
    clock.set(T0 + ms);
    if (input === undefined) region.supervisor.advanceTo(T0 + ms);
    else region.supervisor.submit(input, T0 + ms);
    await region.supervisor.whenIdle();
  };
  try {
    await run({ region, clock, records, effects, at });
  } finally {
    await store.close();
    cleanup();
  }
}

const nodeContext = (region: Region, nodeId: string): NodeContext | undefined =>
  region.supervisor.shard('CAISO').snapshotOf(`node/${nodeId}`)?.context as NodeContext | undefined;
const reservationContext = (region: Region, requestId: string): ReservationContext | undefined =>
  region.supervisor.shard('CAISO').snapshotOf(`reservation/${requestId}`)?.context as ReservationContext | undefined;

const telemetry = (nodeId: string, ms: number, extra: Partial<NodeReport> = {}): RegionInput => ({
  type: 'telemetry',
  nodeId,
  report: report({ reportedAtMs: T0 + ms, ...extra }),
});
const request = (requestId: string): RegionInput => ({
  type: 'inference',
  request: { requestId, modelId: 'llama-3-70b', contextWindow: 4096, priority: 'normal', requesterGeozone: 'CAISO' },
  triedGeozones: [],
});

test('a reservation expires exactly 30 000 ms after it was made, and frees its node', async (t) => {
  await withRegion(async ({ region, records, effects, at }) => {
    await at(0, telemetry('n1', 0));
    await at(1_234, request('r1'));
    const dispatch = effects.find((e) => e.type === 'dispatch');
    t.is(dispatch?.type === 'dispatch' ? dispatch.expiresAtMs : undefined, T0 + 31_234);
    await at(25_000, telemetry('n1', 25_000)); // keep the node alive
    await at(31_233);
    t.is(region.supervisor.shard('CAISO').snapshotOf('reservation/r1')?.value, 'dispatched');
    await at(31_300);
    const expiry = records.find((r) => r.event.type === 'expire');
    t.is(expiry?.atMs, T0 + 31_234);
    t.is(expiry?.state, 'expired');
    const release = records.find((r) => r.event.type === 'release');
    t.is(release?.atMs, T0 + 31_234);
    t.deepEqual(nodeContext(region, 'n1')?.reservations, []);
    t.truthy(effects.find((e) => e.type === 'ended' && e.outcome === 'expired'));
  });
});

test('a silent node goes offline exactly 30 000 ms after its last telemetry and its reservation is re-routed', async (t) => {
  await withRegion(async ({ region, records, effects, at }) => {
    await at(0, telemetry('n1', 0, { energySource: 'cogen' }));
    await at(500, telemetry('n2', 500, { energySource: 'grid' }));
    await at(1_000, request('r1'));
    t.is(reservationContext(region, 'r1')?.nodeId, 'n1', 'cogen ranks first');
    await at(20_000, telemetry('n2', 20_000));
    await at(45_000);
    const timeout = records.find((r) => r.event.type === 'timeout');
    t.is(timeout?.actorId, 'node/n1');
    t.is(timeout?.atMs, T0 + 30_000);
    const lost = records.find((r) => r.event.type === 'node.lost');
    t.is(lost?.atMs, T0 + 30_000);
    const res = reservationContext(region, 'r1');
    t.is(res?.nodeId, 'n2');
    t.is(res?.expiresAtMs, T0 + 60_000, 'a fresh 30 s on the new node');
    t.truthy(effects.find((e) => e.type === 'system' && e.message.includes('went offline')));
    t.is(effects.filter((e) => e.type === 'dispatch').length, 2);
  });
});

test('no eligible node anywhere: rejected with a reason; a duplicate request id is refused without touching state', async (t) => {
  await withRegion(async ({ records, effects, at }) => {
    await at(0, telemetry('n1', 0, { gpuUtilization: 0.9 }));
    await at(10, request('r1'));
    const decision = effects.find((e) => e.type === 'decision');
    t.is(decision?.type === 'decision' ? decision.outcome : undefined, 'rejected');
    const count = records.length;
    await at(20, request('r1'));
    t.is(records.length, count, 'nothing journaled for a duplicate');
    t.truthy(effects.find((e) => e.type === 'decision' && e.outcome === 'duplicate'));
  });
});

test('telemetry for a geozone this process does not own is refused with a code', async (t) => {
  await withRegion(({ region }) => {
    const error = t.throws(() => region.supervisor.submit(telemetry('x', 0, { geozone: 'ERCOT' })), { instanceOf: ArcError });
    t.is(error.code, 'ARC_ERR_UNKNOWN_SHARD');
    t.is(region.supervisor.shard('CAISO').actorCount, 0);
    return Promise.resolve();
  });
});

test('no effect is released before the records that caused it are durable', async (t) => {
  await withRegion(async ({ region, effects, at }) => {
    await at(0, telemetry('n1', 0));
    const shard = region.supervisor.shard('CAISO');
    let checked = 0;
    const seen = effects.length;
    region.supervisor.submit(request('r1'), T0 + 10);
    t.is(effects.length, seen, 'nothing released synchronously');
    t.true(shard.lastDurableOffset < shard.lastOffset, 'records are pending');
    await region.supervisor.whenIdle();
    for (const effect of effects.slice(seen)) {
      if (effect.type === 'dispatch') checked++;
    }
    t.is(checked, 1);
    t.is(shard.lastDurableOffset, shard.lastOffset);
  });
});

test('fast recovery keeps an actor whose id was used before (a request id reused after its retention)', async (t) => {
  const { dir, cleanup } = tempDir();
  try {
    const store = new LmdbStore(dir);
    const clock = new ManualClock(T0);
    const region = createRegion({ geozones: ['CAISO'], store, clock, scheduler: realScheduler, deliverForwards: true, onEffects: () => undefined });
    region.supervisor.recover();
    const at = (ms: number, input: RegionInput): void => {
      clock.set(T0 + ms);
      region.supervisor.submit(input, T0 + ms);
    };
    at(0, telemetry('n1', 0));
    at(10, request('r1'));
    at(100, { type: 'result', requestId: 'r1', nodeId: 'n1', latencyMs: 90, status: 'completed' });
    for (let ms = 20_000; ms <= 12 * 60_000; ms += 20_000) at(ms, telemetry('n1', ms));
    at(12 * 60_000 + 1, request('r1')); // past the 10-minute retention: a new request with the same id
    await region.supervisor.whenIdle();
    t.is(reservationContext(region, 'r1')?.nodeId, 'n1');
    const liveHash = region.supervisor.stateHash();
    await store.close();

    for (const skipEphemeral of [false, true]) {
      const reopened = new LmdbStore(dir);
      const again = createRegion({ geozones: ['CAISO'], store: reopened, clock: new ManualClock(0), scheduler: realScheduler, deliverForwards: false, onEffects: () => undefined });
      again.supervisor.recover(false, { skipEphemeral });
      t.is(again.supervisor.stateHash(), liveHash, `skipEphemeral=${String(skipEphemeral)}`);
      t.is(reservationContext(again, 'r1')?.nodeId, 'n1');
      await reopened.close();
    }
  } finally {
    cleanup();
  }
});
