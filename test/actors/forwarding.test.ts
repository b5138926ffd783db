import test from 'ava';
import { createRegion } from '../../actors/region.js';
import type { RegionEffect, RegionInput } from '../../actors/region-io.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { ManualClock, realScheduler } from '../../runtime/clock.js';
import { checkJournal } from '../../simulations/run-simulation.js';
import { report, tempDir } from '../helpers/fixtures.js';

const T0 = 1_767_225_600_000;
const telemetry = (nodeId: string, geozone: string): RegionInput => ({ type: 'telemetry', nodeId, report: report({ geozone, reportedAtMs: T0 }) });
const request = (requestId: string, requesterGeozone: string): RegionInput => ({
  type: 'inference',
  request: { requestId, modelId: 'llama-3-70b', contextWindow: 4096, priority: 'normal', requesterGeozone },
  triedGeozones: [],
});

function open(dir: string, deliverForwards: boolean, effects: RegionEffect[] = []) {
  const store = new LmdbStore(dir);
  const region = createRegion({ geozones: ['CAISO', 'ERCOT'], store, clock: new ManualClock(T0), scheduler: realScheduler, deliverForwards, onEffects: (e) => effects.push(...e) });
  return { store, region };
}

test('a request with no node in its geozone is forwarded, taken by the other shard, and acknowledged', async (t) => {
  const { dir, cleanup } = tempDir();
  const effects: RegionEffect[] = [];
  const { store, region } = open(dir, true, effects);
  try {
    region.supervisor.recover();
    region.supervisor.submit(telemetry('e1', 'ERCOT'), T0);
    region.supervisor.submit(request('r1', 'CAISO'), T0 + 10);
    await region.supervisor.whenIdle();
    t.is(region.supervisor.shard('CAISO').snapshotOf('reservation/r1'), undefined, 'the home copy ended as forwarded');
    t.is(region.supervisor.shard('ERCOT').snapshotOf('reservation/r1')?.value, 'dispatched');
    t.truthy(effects.find((e) => e.type === 'dispatch' && e.nodeId === 'e1'));
    t.is(region.stats.forwarded, 1);
  } finally {
    await store.close();
    cleanup();
  }
});

test('a forward lost with the process is sent again on recovery and taken exactly once', async (t) => {
  const { dir, cleanup } = tempDir();
  try {
    // First life: the forward is journaled at CAISO, then the process dies before ERCOT sees it.
    const first = open(dir, false);
    first.region.supervisor.recover();
    first.region.supervisor.submit(telemetry('e1', 'ERCOT'), T0);
    first.region.supervisor.submit(request('r1', 'CAISO'), T0 + 10);
    await first.region.supervisor.whenIdle();
    t.is(first.region.supervisor.shard('CAISO').snapshotOf('reservation/r1')?.value, 'forwarding');
    await first.store.close();

    // Second life: recovery re-sends it; ERCOT takes it and acknowledges.
    const effects: RegionEffect[] = [];
    const second = open(dir, true, effects);
    second.region.supervisor.recover();
    await second.region.supervisor.whenIdle();
    t.is(second.region.supervisor.shard('ERCOT').snapshotOf('reservation/r1')?.value, 'dispatched');
    t.is(second.region.supervisor.shard('CAISO').snapshotOf('reservation/r1'), undefined);
    t.is(effects.filter((e) => e.type === 'dispatch').length, 1);

    // A duplicate re-send (e.g. from a retry tick) is acknowledged but not taken twice.
    second.region.supervisor.shard('ERCOT').process(
      { type: 'inference', request: { requestId: 'r1', modelId: 'llama-3-70b', contextWindow: 4096, priority: 'normal', requesterGeozone: 'CAISO' }, triedGeozones: ['CAISO'], targetGeozone: 'ERCOT' },
      T0 + 20,
    );
    await second.region.supervisor.whenIdle();
    t.is(effects.filter((e) => e.type === 'dispatch').length, 1);
    const report_ = checkJournal(second.store);
    t.is(report_.violations, 0, JSON.stringify(report_.first));
    t.is(report_.inFlight, 1);
    await second.store.close();
  } finally {
    cleanup();
  }
});
