import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { PointInTimeStore, resolvePoint, stateAt } from '../../inspector/point-in-time.js';
import { ReplayRunner } from '../../inspector/replay-runner.js';
import { runSimulation } from '../../simulations/run-simulation.js';
import { tempDir } from '../helpers/fixtures.js';

const cli = fileURLToPath(new URL('../../cli/arcnet.js', import.meta.url));

function replayUntil(dir: string, ...args: string[]): { stateHash: string; until: { atMs: number; offsets: Record<string, number> }; counts: Record<string, Record<string, Record<string, number>>> } {
  const run = spawnSync(process.execPath, [cli, 'replay', '--journal', dir, '--json', ...args], { encoding: 'utf8', timeout: 120_000 });
  if (run.status !== 0) throw new Error(`arcnet replay exited ${run.status}: ${run.stderr}`);
  return JSON.parse(run.stdout) as ReturnType<typeof replayUntil>;
}

/** One simulated journal for every test here, with snapshots along the way (so points fall between them). */
const fixture = (() => {
  const { dir, cleanup } = tempDir('arcnet-time-travel-');
  const journal = `${dir}/j`;
  const ready = runSimulation({ seed: 21, nodes: 40, geozones: ['CAISO', 'ERCOT'], durationMs: 90_000, ratePerSec: 15, faults: true, journalDir: journal, snapshotEveryRecords: 1_500 });
  return { journal, ready, cleanup };
})();
test.after.always(() => fixture.cleanup());

test('a point replays to the state hash and counts that arcnet replay --until-offset / --until print for it', async (t) => {
  await fixture.ready;
  const store = new LmdbStore(fixture.journal, { readOnly: true });
  try {
    t.true(store.offsets('CAISO').length > 1, 'the journal has snapshots to start from');
    for (const offset of [0, 777, 2_345]) {
      const cli = replayUntil(fixture.journal, '--until-offset', String(offset), '--geozone', 'CAISO');
      const fromSnapshot = stateAt(store, { geozone: 'CAISO', offset });
      t.is(fromSnapshot.stateHash, cli.stateHash, `offset ${offset}`);
      t.deepEqual(fromSnapshot.point.offsets, cli.until.offsets);
      t.deepEqual(Object.fromEntries(fromSnapshot.shards.map((s) => [s.geozone, s.counts])), cli.counts);
    }
    const atMs = stateAt(store, { geozone: 'ERCOT', offset: 1_600 }).point.atMs + 1;
    const byTime = replayUntil(fixture.journal, '--until', String(atMs));
    const rebuilt = stateAt(store, { atMs });
    t.is(rebuilt.stateHash, byTime.stateHash);
    t.deepEqual(rebuilt.point.offsets, byTime.until.offsets);
    t.true(Object.values(rebuilt.fromSnapshot).some((offset) => offset >= 0), 'rebuilt from a snapshot, not from the start');
  } finally {
    await store.close();
  }
});

test('the point-in-time view ends its journals at the point and hides later snapshots', async (t) => {
  await fixture.ready;
  const store = new LmdbStore(fixture.journal, { readOnly: true });
  try {
    const point = resolvePoint(store, { geozone: 'CAISO', offset: 2_000 });
    const view = new PointInTimeStore(store, point.offsets);
    t.is(view.journal('CAISO').nextOffset(), 2_001);
    t.is([...view.journal('CAISO').read(1_990)].length, 11);
    t.true(view.offsets('CAISO').every((offset) => offset <= 2_000));
    t.true((view.latest('CAISO')?.offset ?? -1) <= 2_000);
    // Every other shard stops at its last record no later than CAISO's record 2000.
    const ercotLast = [...view.journal('ERCOT').read(0)].at(-1);
    t.true((ercotLast?.atMs ?? 0) <= point.atMs);
    const next = [...store.journal('ERCOT').read((ercotLast?.offset ?? -1) + 1)][0];
    t.true(next === undefined || next.atMs > point.atMs);
    await t.throwsAsync(view.save(), { message: /read-only/ });
    t.throws(() => resolvePoint(store, { geozone: 'CAISO', offset: 10_000_000 }), { message: /outside CAISO's journal/ });
  } finally {
    await store.close();
  }
});

test('stepping one event forward and back in the replay worker gives the hash of a fresh replay at each point', async (t) => {
  await fixture.ready;
  const store = new LmdbStore(fixture.journal, { readOnly: true });
  const runner = new ReplayRunner({ path: fixture.journal });
  try {
    const ends = Object.fromEntries(store.shardIds().map((g) => [g, store.journal(g).nextOffset()]));
    const hashes = new Map<number, string>();
    for (const offset of [1_200, 1_201, 1_202, 1_203, 1_202, 1_201, 1_500, 900]) {
      const stepped = await runner.stateAt({ geozone: 'ERCOT', offset }, ends);
      const fresh = stateAt(store, { geozone: 'ERCOT', offset }, { useSnapshots: false });
      t.is(stepped.stateHash, fresh.stateHash, `offset ${offset}`);
      t.is(stepped.point.offsets['ERCOT'], offset);
      t.deepEqual(stepped.shards.map((s) => s.counts), fresh.shards.map((s) => s.counts));
      t.is(stepped.shards.find((s) => s.geozone === 'ERCOT')?.record?.offset, offset, 'the last event included is the one at the point');
      if (hashes.has(offset)) t.is(hashes.get(offset), stepped.stateHash, `back at ${offset}: the same state`);
      hashes.set(offset, stepped.stateHash);
    }
    t.true(new Set(hashes.values()).size > 1, 'the steps reach different states');
  } finally {
    await runner.close();
    await store.close();
  }
});

test('a newer time-travel request supersedes one still replaying', async (t) => {
  await fixture.ready;
  const runner = new ReplayRunner({ path: fixture.journal });
  try {
    const store = new LmdbStore(fixture.journal, { readOnly: true });
    const ends = Object.fromEntries(store.shardIds().map((g) => [g, store.journal(g).nextOffset()]));
    const expected = stateAt(store, { geozone: 'CAISO', offset: 100 }).stateHash;
    await store.close();
    const older = runner.stateAt({ geozone: 'CAISO', offset: 3_000 }, ends);
    const newer = runner.stateAt({ geozone: 'CAISO', offset: 100 }, ends);
    const olderError = await t.throwsAsync(older);
    t.is((olderError as { code?: string } | undefined)?.code, 'ARC_ERR_OVERLOADED');
    t.is((await newer).stateHash, expected);
  } finally {
    await runner.close();
  }
});
