import test from 'ava';
import { cpSync } from 'node:fs';
import { createRegion } from '../../actors/region.js';
import type { RegionEffect, RegionInput } from '../../actors/region-io.js';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { ManualClock, realScheduler } from '../../runtime/clock.js';
import type { Journal, JournalRecord, JournalStore } from '../../runtime/journal.js';
import type { ShardSnapshot, SnapshotStore } from '../../runtime/snapshot-store.js';
import { modelCatalogue } from '../../simulations/fleet.js';
import { DEFAULT_SIM_START_MS, runSimulation } from '../../simulations/run-simulation.js';
import { tempDir } from '../helpers/fixtures.js';

/**
 * Fast recovery (what a restart runs: snapshot, then the tail with lives that end
 * in it left unrun, and the behaviour told of each surviving actor once) must
 * leave a region that is the same as one rebuilt record by record from offset 0:
 * the same state hash, and also what the hash does not cover but the region's
 * future depends on: the routing index, the timer wheel, the reservations the
 * behaviour tracks. So after recovering, both regions are given the same
 * requests and then ten minutes of silence (every reservation expires, every
 * node times out), and must write the same records and reach the same hash.
 */

/** The real store, with recovery's snapshot limited to one at or before `maxOffset` of each shard. */
class SnapshotAt implements JournalStore, SnapshotStore {
  constructor(
    private readonly store: LmdbStore,
    private readonly maxOffsets: ReadonlyMap<string, number>,
  ) {}

  journal(shardId: string): Journal {
    return this.store.journal(shardId);
  }

  shardIds(): string[] {
    return this.store.shardIds();
  }

  save(snapshot: ShardSnapshot): Promise<void> {
    return this.store.save(snapshot);
  }

  latest(shardId: string, maxOffset?: number): ShardSnapshot | undefined {
    const cap = this.maxOffsets.get(shardId) ?? -1;
    return cap < 0 ? undefined : this.store.latest(shardId, Math.min(cap, maxOffset ?? cap));
  }

  offsets(shardId: string): number[] {
    return this.store.offsets(shardId);
  }
}

interface Outcome {
  readonly recoveredHash: string;
  readonly skipped: number;
  readonly fromSnapshotOffsets: number[];
  readonly candidates: Record<string, string[]>;
  readonly nextDueMs: number | undefined;
  readonly effectsOnRecovery: string[];
  readonly recordsAfter: string[];
  readonly finalHash: string;
}

/** Recovers a copy of the data folder (snapshots capped at `maxOffsets`; none: from offset 0), then drives its future. */
async function recoverAndGoOn(source: string, copy: string, mode: { fast: boolean; maxOffsets: ReadonlyMap<string, number> }, endMs: number): Promise<Outcome> {
  cpSync(source, copy, { recursive: true });
  const store = new LmdbStore(copy);
  try {
    const clock = new ManualClock(0);
    const effects: RegionEffect[] = [];
    const region = createRegion({
      geozones: store.shardIds(),
      store: new SnapshotAt(store, mode.maxOffsets),
      clock,
      scheduler: realScheduler,
      deliverForwards: false,
      onEffects: (released) => effects.push(...released),
    });
    const recovered = region.supervisor.recover(true, { skipEphemeral: mode.fast });
    await region.supervisor.whenIdle();
    const recoveredHash = region.supervisor.stateHash();
    const candidates: Record<string, string[]> = {};
    for (const [geozone, behaviour] of region.behaviours) {
      for (const { modelId } of modelCatalogue) candidates[`${geozone}/${modelId}`] = behaviour.index.candidates(modelId);
    }
    const nextDueMs = region.supervisor.nextDueMs();
    const effectsOnRecovery = effects.map((effect) => JSON.stringify(effect));
    const firstNew = new Map(region.supervisor.all().map((shard) => [shard.shardId, shard.lastOffset + 1]));

    // The same requests, then silence long enough for every deadline to pass.
    clock.set(endMs + 1_000);
    let n = 0;
    for (const geozone of store.shardIds()) {
      for (const { modelId } of modelCatalogue) {
        const input: RegionInput = {
          type: 'inference',
          request: { requestId: `after-${n++}`, modelId, contextWindow: 4096, priority: 'normal', requesterGeozone: geozone },
          triedGeozones: [],
        };
        region.supervisor.submit(input);
      }
    }
    for (let atMs = endMs + 10_000; atMs <= endMs + 10 * 60_000; atMs += 10_000) {
      clock.set(atMs);
      region.supervisor.advanceTo(atMs);
    }
    await region.supervisor.whenIdle();
    const recordsAfter: string[] = [];
    for (const [shardId, from] of firstNew) {
      for (const record of store.journal(shardId).read(from)) recordsAfter.push(`${shardId} ${JSON.stringify(record satisfies JournalRecord)}`);
    }
    return {
      recoveredHash,
      skipped: recovered.reduce((sum, r) => sum + r.skipped, 0),
      fromSnapshotOffsets: recovered.map((r) => r.fromSnapshotOffset),
      candidates,
      nextDueMs,
      effectsOnRecovery,
      recordsAfter,
      finalHash: region.supervisor.stateHash(),
    };
  } finally {
    await store.close();
  }
}

test('fast recovery from any snapshot point reaches the state, indexes and timers of a record-by-record replay', async (t) => {
  const { dir, cleanup } = tempDir();
  try {
    const source = `${dir}/run`;
    const run = await runSimulation({
      seed: 23,
      nodes: 120,
      geozones: ['CAISO', 'ERCOT', 'PJM'],
      durationMs: 6 * 60_000,
      ratePerSec: 40,
      faults: true,
      journalDir: source,
      snapshotEveryRecords: 3_000,
      finalSnapshot: false,
    });
    t.true(run.nodeTimeouts > 0 && run.expired > 0 && run.completed > 0 && run.forwarded > 0, 'faults exercised timeouts, expiries and forwards');
    const store = new LmdbStore(source);
    const offsets = new Map(store.shardIds().map((shardId) => [shardId, store.offsets(shardId)]));
    await store.close();
    t.true([...offsets.values()].every((list) => list.length >= 4), 'every shard has several snapshots');
    const endMs = DEFAULT_SIM_START_MS + run.durationMs;

    const reference = await recoverAndGoOn(source, `${dir}/full`, { fast: false, maxOffsets: new Map() }, endMs);
    t.is(reference.recoveredHash, run.stateHash, 'the record-by-record replay reaches the live state');
    t.true(reference.recordsAfter.length > 100, 'the future after recovery routes, expires and times out');

    // No snapshot (every node spawned in the tail), the first, middle and last snapshot of every shard.
    const points: [string, (list: number[]) => number][] = [
      ['no snapshot', () => -1],
      ['first snapshot', (list) => list[0] as number],
      ['middle snapshot', (list) => list[Math.floor(list.length / 2)] as number],
      ['last snapshot', (list) => list[list.length - 1] as number],
    ];
    for (const [name, pick] of points) {
      const maxOffsets = new Map([...offsets].map(([shardId, list]) => [shardId, pick(list)]));
      const fast = await recoverAndGoOn(source, `${dir}/${name.replace(' ', '-')}`, { fast: true, maxOffsets }, endMs);
      t.true(fast.skipped > 0, `${name}: ended lives were left unrun`);
      if (name !== 'no snapshot') t.true(fast.fromSnapshotOffsets.every((offset) => offset >= 0), `${name}: recovered from a snapshot`);
      t.is(fast.recoveredHash, reference.recoveredHash, `${name}: state hash`);
      t.deepEqual(fast.candidates, reference.candidates, `${name}: routing index`);
      t.is(fast.nextDueMs, reference.nextDueMs, `${name}: next deadline`);
      t.deepEqual(fast.effectsOnRecovery, reference.effectsOnRecovery, `${name}: effects owed from before the restart`);
      t.deepEqual(fast.recordsAfter, reference.recordsAfter, `${name}: what the region does next`);
      t.is(fast.finalHash, reference.finalHash, `${name}: state hash after it`);
    }
  } finally {
    cleanup();
  }
});
