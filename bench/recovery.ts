import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { createActor, type Actor, type AnyStateMachine } from 'xstate';
import { createRegion } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import type { JournalRecord } from '../runtime/journal.js';
import { nodeMachine } from '../machines/node.js';
import { reservationMachine } from '../machines/reservation.js';
import { ManualClock, monotonicNowMs, realScheduler, WallClock } from '../runtime/clock.js';
import { benchModels, fleetTelemetry } from './fleet-fixture.js';
import { figure, median, round, type Figure } from './measure.js';

/** The region recovery is timed on: the 10,000-node region. */
const NODES = 10_000;
/** Requests before the snapshot and after it (the tail recovery replays). */
const REQUESTS_BEFORE = 20_000;
const REQUESTS_AFTER = 20_000;
/** Requests in flight while the journal is written. */
const OUTSTANDING = 1024;
const GEOZONE = 'CAISO';

/** Sends `count` requests (ids from `firstId`) through the region, answering each dispatch, until all are settled. */
async function drive(region: ReturnType<typeof createRegion>, pending: { results: RegionInput[]; open: Set<string> }, firstId: number, count: number): Promise<void> {
  const supervisor = region.supervisor;
  let sent = 0;
  while (sent < count || pending.open.size > 0 || pending.results.length > 0) {
    const answers = pending.results;
    pending.results = [];
    for (const result of answers) supervisor.submit(result);
    for (let i = 0; i < 256 && sent < count && pending.open.size < OUTSTANDING; i++) {
      const requestId = `req-${firstId + sent}`;
      sent++;
      pending.open.add(requestId);
      supervisor.submit({
        type: 'inference',
        request: { requestId, modelId: benchModels[sent % benchModels.length] as string, contextWindow: 4096, priority: 'normal', requesterGeozone: GEOZONE },
        triedGeozones: [],
      });
    }
    await nextTurn();
  }
  await supervisor.whenIdle();
}

export interface RecoveryJournal {
  readonly dir: string;
  /** Longest event-loop stall while the snapshot was written, and the longest in an equal stretch of input without one. */
  readonly snapshotStallMs: number;
  readonly baselineStallMs: number;
  /** Time to capture the region's state synchronously (periodic snapshots, no hash), and the actors captured. */
  readonly captureMs: number;
  readonly capturedActors: number;
}

/**
 * Writes a 10,000-node region's journal: telemetry from every node, requests,
 * a snapshot (its event-loop stall measured against the same input without
 * one), then a tail of requests after it.
 */
export async function writeRecoveryJournal(dir: string): Promise<RecoveryJournal> {
  const store = new LmdbStore(dir);
  const clock = new WallClock();
  const pending = { results: [] as RegionInput[], open: new Set<string>() };
  const region = createRegion({
    geozones: [GEOZONE],
    store,
    clock,
    scheduler: realScheduler,
    deliverForwards: true,
    onEffects: (effects: readonly RegionEffect[]) => {
      for (const effect of effects) {
        if (effect.type === 'dispatch') {
          pending.results.push({ type: 'result', requestId: effect.requestId, nodeId: effect.nodeId, latencyMs: 1, status: 'completed' });
          pending.open.delete(effect.requestId);
        } else if (effect.type === 'decision' && effect.outcome !== 'reserved') pending.open.delete(effect.requestId);
      }
    },
  });
  region.supervisor.recover();
  for (const input of fleetTelemetry(NODES, GEOZONE, clock.nowMs())) region.supervisor.submit(input);
  await region.supervisor.whenIdle();
  await drive(region, pending, 0, REQUESTS_BEFORE);

  // The longest event-loop stall over a snapshot of the whole region, against an equal idle stretch without one:
  // with no input the loop is free, so what blocks it is the snapshot (capture, encoding, the write).
  const longestStall = async (work: () => Promise<unknown>): Promise<number> => {
    // A 1 ms interval timer: the longest gap between its firings is the longest the loop was blocked.
    let last = monotonicNowMs();
    let longest = 0;
    const probe = setInterval(() => {
      const now = monotonicNowMs();
      longest = Math.max(longest, now - last);
      last = now;
    }, 1);
    await sleep(20);
    longest = 0;
    await work();
    await sleep(5);
    clearInterval(probe);
    return longest;
  };
  let snapshotMs = 0;
  const snapshotStallMs = await longestStall(async () => {
    const start = monotonicNowMs();
    // The periodic snapshot the shard takes every snapshotEveryRecords (no state hash).
    await region.supervisor.shard(GEOZONE).snapshotNow(false);
    snapshotMs = monotonicNowMs() - start;
  });
  const baselineStallMs = await longestStall(() => sleep(Math.max(10, snapshotMs)));
  // The synchronous part of a periodic snapshot (no state hash): what the loop cannot escape.
  const shard = region.supervisor.shard(GEOZONE);
  const captureStart = monotonicNowMs();
  const captured = shard.capture(false);
  const captureMs = monotonicNowMs() - captureStart;
  await drive(region, pending, REQUESTS_BEFORE, REQUESTS_AFTER);
  await store.close();
  return { dir, snapshotStallMs, baselineStallMs, captureMs, capturedActors: captured.actors.length };
}

/** Recovers the region from its latest snapshot and the journal tail after it, as a restart does. */
export function recoverRegion(dir: string): { ms: number; records: number; actors: number; tailRecords: number; skippedRecords: number } {
  const store = new LmdbStore(dir);
  const region = createRegion({ geozones: [GEOZONE], store, clock: new ManualClock(0), scheduler: realScheduler, deliverForwards: false, onEffects: () => undefined });
  const start = monotonicNowMs();
  const [recovered] = region.supervisor.recover(true, { skipEphemeral: true });
  const ms = monotonicNowMs() - start;
  const actors = region.supervisor.shard(GEOZONE).actorCount;
  const snapshotActors = store.latest(GEOZONE)?.actors.length ?? 0;
  void store.close();
  const tailRecords = recovered?.replayed ?? 0;
  return { ms, records: tailRecords + snapshotActors, actors, tailRecords, skippedRecords: recovered?.skipped ?? 0 };
}

const machines: Record<string, AnyStateMachine> = { node: nodeMachine, reservation: reservationMachine };

/**
 * The raw cost underneath: read the same snapshot and tail from LMDB, and restore the snapshot's actors as bare XState actors.
 * Apart (`rerunMs`): bare `actor.send` of the tail records of those actors, the machine work any recovery that does
 * not carry actor state in its records must redo.
 */
function rawRestore(dir: string): { ms: number; tail: number; rerunMs: number } {
  const store = new LmdbStore(dir);
  const start = monotonicNowMs();
  const snapshot = store.latest(GEOZONE);
  const actors = new Map<string, Actor<AnyStateMachine>>();
  for (const actor of snapshot?.actors ?? []) actors.set(actor.id, createActor(machines[actor.kind] as AnyStateMachine, { snapshot: actor.snapshot as never }).start());
  const tail: JournalRecord[] = [];
  for (const record of store.journal(GEOZONE).read((snapshot?.offset ?? -1) + 1)) tail.push(record);
  const ms = monotonicNowMs() - start;
  const rerunStart = monotonicNowMs();
  for (const record of tail) actors.get(record.actorId)?.send(record.event);
  const rerunMs = monotonicNowMs() - rerunStart;
  void store.close();
  return { ms, tail: tail.length, rerunMs };
}

export async function recoveryBench(dir: string): Promise<Figure[]> {
  const written = await writeRecoveryJournal(`${dir}/recovery`);
  const runs: ReturnType<typeof recoverRegion>[] = [];
  const raw: number[] = [];
  const rerun: number[] = [];
  recoverRegion(written.dir); // warm up
  for (let i = 0; i < 3; i++) {
    runs.push(recoverRegion(written.dir));
    const bare = rawRestore(written.dir);
    raw.push(bare.ms);
    rerun.push(bare.rerunMs);
  }
  const ms = median(runs.map((r) => r.ms));
  const rawMs = median(raw);
  const first = runs[0] as ReturnType<typeof recoverRegion>;
  const records = first.records;
  return [
    figure({
      bench: 'recovery',
      metric: 'region_10k_nodes_recovery_ms',
      unit: 'ms',
      value: ms,
      baseline: { what: 'raw: read the same snapshot and tail from LMDB and restore its actors as bare XState actors (median of 3)', value: rawMs },
      extra: {
        nodes: NODES,
        actors: first.actors,
        recordsPerSec: round((records / ms) * 1000),
        records,
        // Tail records of actors born and ended in the tail are not re-run; the rest go through their machines.
        tailRecords: first.tailRecords,
        tailRecordsRerun: first.tailRecords - first.skippedRecords,
        runsMs: runs.map((r) => round(r.ms)),
        rawRerunOfTailMs: round(median(rerun)),
      },
      goal: '<= 1,000 ms; >= 500,000 records/s (snapshot actors + tail records)',
    }),
    figure({
      bench: 'recovery',
      metric: 'snapshot_max_input_stall_ms',
      unit: 'ms',
      value: written.snapshotStallMs,
      baseline: { what: 'longest event-loop stall over an idle stretch as long, without a snapshot', value: written.baselineStallMs },
      extra: { nodes: NODES, captureMs: round(written.captureMs), capturedActors: written.capturedActors },
      goal: '<= 5 ms',
    }),
  ];
}
