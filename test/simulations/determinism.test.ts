import test from 'ava';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { replayJournal } from '../../simulations/replay.js';
import { runSimulation, type SimulationOptions } from '../../simulations/run-simulation.js';
import { tempDir } from '../helpers/fixtures.js';

const base: Omit<SimulationOptions, 'journalDir' | 'seed'> = {
  nodes: 90,
  geozones: ['CAISO', 'ERCOT', 'PJM'],
  durationMs: 6 * 60_000,
  ratePerSec: 40,
  faults: true,
};

test('the same seed gives the same journal and state hash; another seed does not; replay agrees', async (t) => {
  const { dir, cleanup } = tempDir();
  try {
    const a = await runSimulation({ ...base, seed: 7, journalDir: `${dir}/a` });
    const b = await runSimulation({ ...base, seed: 7, journalDir: `${dir}/b` });
    const c = await runSimulation({ ...base, seed: 8, journalDir: `${dir}/c` });
    t.true(a.events > 10_000, `a real run (${a.events} records)`);
    t.true(a.nodeTimeouts > 0 && a.expired > 0 && a.completed > 0, 'faults exercised timeouts and expiries');
    t.is(a.invariantViolations, 0, JSON.stringify(a.violationsByRule));
    t.is(b.stateHash, a.stateHash);
    t.is(b.journalDigest, a.journalDigest);
    t.is(b.events, a.events);
    t.not(c.stateHash, a.stateHash);
    t.not(c.journalDigest, a.journalDigest);

    const fast = await replayJournal(`${dir}/a`, { skipEphemeral: true });
    t.is(fast.stateHash, a.stateHash, 'recovery that skips ended reservations reaches the same state');
    t.true(fast.skippedRecords > 0);
    t.is(fast.completed, a.completed);

    const replayed = await replayJournal(`${dir}/a`);
    t.is(replayed.stateHash, a.stateHash);
    t.is(replayed.journalDigest, a.journalDigest);
    t.is(replayed.invariantViolations, 0);
    for (const key of ['events', 'requests', 'routed', 'completed', 'expired', 'rejected', 'forwarded', 'nodeTimeouts'] as const) {
      t.is(replayed[key], a[key], key);
    }
  } finally {
    cleanup();
  }
});

test('recovery from a mid-journal snapshot plus the tail equals a full replay', async (t) => {
  const { dir, cleanup } = tempDir();
  try {
    const run = await runSimulation({ ...base, seed: 11, journalDir: dir, snapshotEveryRecords: 4_000, finalSnapshot: false });
    const store = new LmdbStore(dir);
    const snapshotted = store.shardIds().map((shard) => store.offsets(shard));
    await store.close();
    t.true(snapshotted.every((offsets) => offsets.length > 0), 'every shard has snapshots');

    const full = await replayJournal(dir);
    const fromSnapshot = await replayJournal(dir, { useSnapshots: true });
    t.is(full.stateHash, run.stateHash);
    t.is(fromSnapshot.stateHash, full.stateHash);
    t.true(fromSnapshot.replayedRecords > 0, 'a tail was replayed');
    t.true(fromSnapshot.replayedRecords < full.replayedRecords, 'the snapshot saved work');
  } finally {
    cleanup();
  }
});

test('without faults nothing expires and no node times out', async (t) => {
  const { dir, cleanup } = tempDir();
  try {
    const run = await runSimulation({ ...base, durationMs: 3 * 60_000, faults: false, seed: 3, journalDir: dir });
    t.is(run.nodeTimeouts, 0);
    t.is(run.expired, 0);
    t.true(run.completed > 0);
    t.is(run.invariantViolations, 0);
  } finally {
    cleanup();
  }
});
