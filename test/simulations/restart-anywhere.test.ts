import test from 'ava';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import type { JournalRecord } from '../../runtime/journal.js';
import { DEFAULT_SIM_START_MS, runSimulation, type SimulationOptions, type SimulationResult } from '../../simulations/run-simulation.js';
import { tempDir } from '../helpers/fixtures.js';

/**
 * Restoring from a snapshot must not change what later records say: a run
 * restarted at many points (each time from a snapshot covering the whole
 * journal so far, then fed the same inputs) must write the journal, record for
 * record, and reach the state hash of the same run never restarted.
 *
 * 80 nodes per geozone: with that many active nodes the mean GPU utilisation of
 * a summary often falls exactly on a rounding boundary, where the order of a
 * float sum decides the journaled value.
 */
const base: Omit<SimulationOptions, 'journalDir'> = {
  seed: 5,
  nodes: 240,
  geozones: ['CAISO', 'ERCOT', 'PJM'],
  durationMs: 5 * 60_000,
  ratePerSec: 30,
  faults: true,
};

type Journals = Map<string, JournalRecord[]>;

async function readJournals(dir: string): Promise<Journals> {
  const store = new LmdbStore(dir);
  try {
    return new Map(store.shardIds().map((shardId) => [shardId, [...store.journal(shardId).read(0)]]));
  } finally {
    await store.close();
  }
}

/** Up to `count` record times spread evenly over the matches. */
function spread(records: JournalRecord[], count: number): number[] {
  if (records.length <= count) return records.map((r) => r.atMs);
  return Array.from({ length: count }, (_, i) => (records[Math.floor((i * records.length) / count)] as JournalRecord).atMs);
}

/** Restart times right at summaries, forwards, expiries and node timeouts, and evenly between. */
function restartTimes(journals: Journals, run: SimulationResult, startMs: number): number[] {
  const all = [...journals.values()].flat();
  const of = (type: string): JournalRecord[] => all.filter((r) => r.event.type === type).sort((a, b) => a.atMs - b.atMs);
  const times = [
    ...spread(of('summary'), 5),
    ...spread(of('route.forwarded'), 6),
    ...spread(of('expire'), 6),
    ...spread(of('timeout'), 4),
    ...Array.from({ length: 8 }, (_, i) => startMs + Math.round(((i + 0.5) * run.durationMs) / 8)),
  ];
  return [...new Set(times)].sort((a, b) => a - b);
}

function firstDifference(straight: Journals, restarted: Journals): string | undefined {
  for (const [shardId, records] of straight) {
    const other = restarted.get(shardId) ?? [];
    const length = Math.max(records.length, other.length);
    for (let i = 0; i < length; i++) {
      const a = JSON.stringify(records[i]);
      const b = JSON.stringify(other[i]);
      if (a !== b) return `${shardId} offset ${i}:\n  straight:  ${a}\n  restarted: ${b}`;
    }
  }
  return undefined;
}

test('a run restarted from snapshots at 25+ points writes the same journal and reaches the same state as the run never restarted', async (t) => {
  t.timeout(10 * 60_000);
  const { dir, cleanup } = tempDir();
  try {
    const straight = await runSimulation({ ...base, journalDir: `${dir}/straight` });
    t.is(straight.invariantViolations, 0, JSON.stringify(straight.violationsByRule));
    const straightJournals = await readJournals(`${dir}/straight`);
    const times = restartTimes(straightJournals, straight, DEFAULT_SIM_START_MS);
    t.true(times.length >= 25, `${times.length} restart points`);

    const restarted = await runSimulation({ ...base, journalDir: `${dir}/restarted`, restartAtMs: times });
    const restarts = restarted.restarts ?? [];
    t.is(restarts.length, times.length, 'every restart happened');
    for (const r of restarts) t.is(r.stateHashAfter, r.stateHashBefore, `the state recovered at ${r.atMs} is the state that stopped`);

    // The restarts cut the journal right after summaries, forwards and expiries: each among the last two records of its shard at some cut
    // (an expiry is followed at once by the release of its node).
    const cutAfter = new Set<string>();
    for (const r of restarts) {
      for (const [shardId, offset] of Object.entries(r.offsets)) {
        for (const record of straightJournals.get(shardId)?.slice(Math.max(0, offset - 1), offset + 1) ?? []) cutAfter.add(record.event.type);
      }
    }
    const restartedJournals = await readJournals(`${dir}/restarted`);
    const difference = firstDifference(straightJournals, restartedJournals);
    t.is(difference, undefined, `first journal difference: ${difference ?? ''}`);
    t.is(restarted.journalDigest, straight.journalDigest);
    t.is(restarted.stateHash, straight.stateHash);
    t.is(restarted.events, straight.events, 'the lives of the restarted run together count every record once');
    for (const type of ['summary', 'route.forwarded', 'expire']) t.true(cutAfter.has(type), `a cut right after a ${type} (cuts after: ${[...cutAfter].join(', ')})`);
  } finally {
    cleanup();
  }
});
