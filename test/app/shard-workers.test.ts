import test from 'ava';
import { createRegion } from '../../actors/region.js';
import type { RegionEffect, RegionInput } from '../../actors/region-io.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { reservationActorId } from '../../actors/reservation-actor.js';
import { startShardWorkers } from '../../app/shard-workers.js';
import { benchModels, fleetTelemetry } from '../../bench/fleet-fixture.js';
import { ManualClock, realScheduler } from '../../runtime/clock.js';
import { tempDir } from '../helpers/fixtures.js';

const GEOZONES = ['CAISO', 'ERCOT', 'PJM'];
const T0 = 1_800_000_000_000;

/** What a run needs from a region, single-threaded or over workers. */
interface Driver {
  submit(input: RegionInput, atMs: number): void;
  advanceTo(atMs: number): void;
  whenIdle(): Promise<void>;
  stateHash(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * The same inputs at the same logical times: telemetry from every geozone,
 * requests from each, results for half of the dispatches (in request-id order,
 * so the order does not depend on which worker answered first), then time moves
 * past every reservation's expiry and every node's silence.
 */
async function drive(driver: Driver, dispatched: string[][]): Promise<string> {
  let at = T0;
  for (const geozone of GEOZONES) for (const input of fleetTelemetry(40, geozone, T0, 7)) driver.submit(input, at++);
  await driver.whenIdle();
  for (let i = 0; i < 300; i++) {
    const geozone = GEOZONES[i % GEOZONES.length] as string;
    driver.submit({ type: 'inference', request: { requestId: `r-${String(i).padStart(4, '0')}`, modelId: benchModels[i % benchModels.length] as string, contextWindow: 4096, priority: 'normal', requesterGeozone: geozone }, triedGeozones: [] }, T0 + 1_000 + i);
  }
  await driver.whenIdle();
  const dispatches = dispatched.flat().sort();
  for (const [i, entry] of dispatches.entries()) {
    if (i % 2 === 1) continue;
    const [requestId, nodeId] = entry.split(' ') as [string, string];
    driver.submit({ type: 'result', requestId, nodeId, latencyMs: 5, status: 'completed' }, T0 + 5_000 + i);
  }
  await driver.whenIdle();
  driver.advanceTo(T0 + 120_000);
  await driver.whenIdle();
  const hash = await driver.stateHash();
  await driver.stop();
  return hash;
}

function collect(dispatched: string[][]): (effects: readonly RegionEffect[]) => void {
  return (effects) => dispatched.push(effects.flatMap((e) => (e.type === 'dispatch' ? [`${e.requestId} ${e.nodeId}`] : [])));
}

async function singleThreaded(dir: string, dispatched: string[][]): Promise<string> {
  const store = new LmdbStore(dir);
  const region = createRegion({ geozones: GEOZONES, store, clock: new ManualClock(T0), scheduler: realScheduler, deliverForwards: true, onEffects: collect(dispatched) });
  region.supervisor.recover();
  return drive(
    {
      submit: (input, atMs) => region.supervisor.submit(input, atMs),
      advanceTo: (atMs) => region.supervisor.advanceTo(atMs),
      whenIdle: () => region.supervisor.whenIdle(),
      stateHash: () => Promise.resolve(region.supervisor.stateHash()),
      stop: async () => {
        await region.supervisor.snapshotAll();
        await store.close();
      },
    },
    dispatched,
  );
}

async function overWorkers(dir: string, workers: number, dispatched: string[][]): Promise<{ hash: string; assignment: Map<string, number> }> {
  const failures: string[] = [];
  const pool = await startShardWorkers({ dataDir: dir, geozones: GEOZONES, workers, onEffects: collect(dispatched), onFailure: (error, geozone) => failures.push(`${geozone}: ${error.message}`) });
  const hash = await drive({ ...pool, stop: async () => void (await pool.stop()) }, dispatched);
  if (failures.length > 0) throw new Error(failures.join('; '));
  return { hash, assignment: new Map(pool.assignment) };
}

function journals(dir: string): Record<string, string> {
  const store = new LmdbStore(dir, { readOnly: true });
  try {
    return Object.fromEntries(GEOZONES.map((g) => [g, JSON.stringify([...store.journal(g).read()])]));
  } finally {
    void store.close();
  }
}

test('the same inputs give the same journals and state hash on one thread, one worker and two workers, and recover over either', async (t) => {
  const dirs = [tempDir(), tempDir(), tempDir()];
  try {
    const [single, one, two] = dirs.map((d) => d.dir) as [string, string, string];
    const singleDispatched: string[][] = [];
    const singleHash = await singleThreaded(single, singleDispatched);
    const oneRun = await overWorkers(one, 1, []);
    const twoRun = await overWorkers(two, 2, []);

    t.true(singleDispatched.flat().length > 100, 'most requests were routed and dispatched');
    t.deepEqual([...twoRun.assignment.values()].sort(), [0, 0, 1], 'two workers share the three geozones, none split');
    t.is(oneRun.hash, singleHash);
    t.is(twoRun.hash, singleHash);
    const expected = journals(single);
    t.true((expected['CAISO']?.length ?? 0) > 1_000);
    t.deepEqual(journals(one), expected);
    t.deepEqual(journals(two), expected);

    // The folder written by one worker recovers over two workers to the same state, and the other way round.
    for (const [dir, workers] of [[one, 2], [two, 1]] as const) {
      const pool = await startShardWorkers({ dataDir: dir, geozones: GEOZONES, workers, onEffects: () => undefined });
      t.is(await pool.stateHash(), singleHash);
      await pool.stop();
    }
  } finally {
    for (const d of dirs) d.cleanup();
  }
});

test('workers must be a whole number of at least one', async (t) => {
  const { dir, cleanup } = tempDir();
  try {
    await t.throwsAsync(startShardWorkers({ dataDir: dir, geozones: GEOZONES, workers: 0, onEffects: () => undefined }), { message: /--workers must be a whole number of at least 1/ });
  } finally {
    cleanup();
  }
});

test('a request forwarded to a geozone of the other worker is decided there and acknowledged back', async (t) => {
  const run = async (workers: number): Promise<{ decisions: string[]; states: string }> => {
    const { dir, cleanup } = tempDir();
    const decisions: string[] = [];
    const onEffects = (effects: readonly RegionEffect[]): void => {
      for (const e of effects) if (e.type === 'decision') decisions.push(`${e.requestId} ${e.outcome} ${e.geozone}`);
    };
    try {
      // Only ERCOT has nodes: a request from CAISO must be forwarded (CAISO and ERCOT are in different workers).
      const inputs: [RegionInput, number][] = [
        ...fleetTelemetry(5, 'ERCOT', T0, 3).map((input, i): [RegionInput, number] => [input, T0 + i]),
        [{ type: 'inference', request: { requestId: 'fwd-1', modelId: 'llama-3-8b', contextWindow: 4096, priority: 'normal', requesterGeozone: 'CAISO' }, triedGeozones: [] }, T0 + 100],
      ];
      const pool = await startShardWorkers({ dataDir: dir, geozones: GEOZONES, workers, onEffects });
      t.not(pool.assignment.get('CAISO'), pool.assignment.get('ERCOT'));
      for (const [input, atMs] of inputs) pool.submit(input, atMs);
      await pool.whenIdle();
      await pool.stop();
      const store = new LmdbStore(dir, { readOnly: true });
      const states = GEOZONES.map((g) => {
        const last = [...store.journal(g).read()].filter((r) => r.actorId === reservationActorId('fwd-1')).at(-1);
        return `${g}:${JSON.stringify(last?.state)}`;
      });
      await store.close();
      return { decisions, states: states.join(' ') };
    } finally {
      cleanup();
    }
  };
  const two = await run(2);
  t.deepEqual(two.decisions, ['fwd-1 reserved ERCOT']);
  // CAISO's copy moved from forwarding to forwarded only because ERCOT's acknowledgement crossed back.
  t.is(two.states, 'CAISO:"forwarded" ERCOT:"dispatched" PJM:undefined');
});
