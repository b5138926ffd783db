import { createRegion, internalInput, type Region } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { addStats, emptyStats, type RegionStats } from '../actors/region-stats.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import { ManualClock, monotonicNowMs, realScheduler } from '../runtime/clock.js';
import { journalDigest } from '../runtime/journal-digest.js';
import { Prng } from '../runtime/random.js';
import { EventQueue } from './event-queue.js';
import { defaultFaults, MIN_RESULT_LATENCY_MS, noFaults, SimFleet } from './fleet.js';
import { InvariantChecker, type InvariantReport } from './invariants.js';
import { SimWorkload } from './workload.js';

export interface SimulationOptions {
  readonly seed: number;
  readonly nodes: number;
  readonly geozones: readonly string[];
  readonly durationMs: number;
  /** Inference requests per second of simulated time. */
  readonly ratePerSec: number;
  readonly faults: boolean;
  /** Data folder for the journal and snapshots. */
  readonly journalDir: string;
  /** Encrypt the data folder with this key (see adapters/lmdb/data-key.ts). */
  readonly encryptionKey?: Buffer | undefined;
  /** Simulated start time (ms since epoch); fixed so runs are comparable. */
  readonly startMs?: number;
  readonly snapshotEveryRecords?: number;
  /** Take a snapshot of every shard at the end (default true). */
  readonly finalSnapshot?: boolean;
  /**
   * Restart the region at these simulated times: once every input stamped at or
   * before the time is in and everything due by then has fired, every shard
   * snapshots, the store closes, and a fresh region recovered from the folder
   * (snapshot, empty tail) goes on with the same fleet and workload. A restart
   * must not change the run: the journal and state hash stay those of the run
   * without it. Windows are not moved by restarts, so both runs settle at the
   * same times; firing what is due by the restart time changes nothing either,
   * since deadlines and ticks fire at their own times and the loop never lets a
   * tick be skipped.
   */
  readonly restartAtMs?: readonly number[];
  /** Called about once per `progressEveryMs` of simulated time with the fraction done. */
  readonly onProgress?: (fraction: number, stats: RegionStats) => void;
  /** Simulated time between onProgress calls (default a minute). */
  readonly progressEveryMs?: number;
  /** Called with each region the run opens (the first, and the one after each restart): benchmarks watch it. */
  readonly onRegion?: (region: Region) => void;
}

export interface SimulationResult extends RegionStats {
  readonly seed: number;
  readonly nodes: number;
  readonly geozones: string[];
  readonly durationMs: number;
  readonly rate: number;
  readonly faults: boolean;
  readonly inFlight: number;
  readonly invariantViolations: number;
  readonly violationsByRule: InvariantReport['byRule'];
  readonly stateHash: string;
  readonly journalDigest: string;
  readonly wallMs: number;
  /** With restartAtMs: each restart, the offsets its snapshots covered, and the state hash before and after it. */
  readonly restarts?: readonly Restart[];
}

export interface Restart {
  readonly atMs: number;
  /** Per shard: the last journal offset in the snapshot the fresh region recovered from. */
  readonly offsets: Readonly<Record<string, number>>;
  /** The region's state hash just before it stopped, and the recovered region's right after. */
  readonly stateHashBefore: string;
  readonly stateHashAfter: string;
}

/** 2026-01-01T00:00:00Z: simulations start here unless told otherwise. */
export const DEFAULT_SIM_START_MS = 1_767_225_600_000;

/**
 * Runs the region on simulated time. The loop advances in windows no longer
 * than the fastest node answer: inputs of a window are processed, the journal
 * is made durable, and only then are the window's effects released to the fleet
 * (write-ahead, as live). Effects are handled shard by shard in id order, so the
 * run, and its journal, are a pure function of the options.
 */
export async function runSimulation(options: SimulationOptions): Promise<SimulationResult> {
  const wallStart = monotonicNowMs();
  const startMs = options.startMs ?? DEFAULT_SIM_START_MS;
  const endMs = startMs + options.durationMs;
  const clock = new ManualClock(startMs);
  const queue = new EventQueue();
  let store = new LmdbStore(options.journalDir, { encryptionKey: options.encryptionKey });
  const geozones = [...new Set(options.geozones)].sort();
  await store.putMeta('simulation', { ...options, onProgress: undefined, onRegion: undefined, startMs });

  const released = new Map<string, RegionEffect[]>(geozones.map((g) => [g, []]));
  const open = (): Region =>
    createRegion({
      geozones,
      store,
      clock,
      scheduler: realScheduler,
      deliverForwards: false,
      limits: options.snapshotEveryRecords === undefined ? {} : { snapshotEveryRecords: options.snapshotEveryRecords },
      onEffects: (effects, geozone) => released.get(geozone)?.push(...effects),
    });
  let region = open();
  options.onRegion?.(region);
  const recovered = region.supervisor.recover();
  if (recovered.some((r) => r.replayed > 0 || r.fromSnapshotOffset >= 0)) {
    await store.close();
    throw new Error(`journal folder ${options.journalDir} is not empty: a simulation writes a fresh journal`);
  }

  const hooks = {
    schedule: (atMs: number, fn: () => void) => queue.schedule(atMs, fn),
    submit: (input: RegionInput) => region.supervisor.submit(input, clock.nowMs()),
  };
  const prng = new Prng(options.seed);
  const fleet = new SimFleet(prng.fork(), { nodes: options.nodes, geozones, faults: options.faults ? defaultFaults : noFaults }, hooks);
  const workload = new SimWorkload(prng.fork(), { ratePerSec: options.ratePerSec, geozones, cancelRate: options.faults ? 0.005 : 0 }, hooks);
  fleet.start(startMs);
  workload.start(startMs);

  // Counters of the regions stopped by restarts (each life counts its own records).
  const earlierStats = emptyStats();
  const restartTimes = [...new Set(options.restartAtMs ?? [])].filter((at) => at >= startMs && at < endMs).sort((a, b) => a - b);
  const restarts: Restart[] = [];
  const restart = async (atMs: number): Promise<void> => {
    clock.set(Math.max(clock.nowMs(), atMs));
    region.supervisor.advanceTo(clock.nowMs());
    await region.supervisor.snapshotAll();
    const stateHashBefore = region.supervisor.stateHash();
    addStats(earlierStats, region.stats);
    await store.close();
    store = new LmdbStore(options.journalDir, { encryptionKey: options.encryptionKey });
    region = open();
    options.onRegion?.(region);
    const lives = region.supervisor.recover();
    const offsets = Object.fromEntries(lives.map((life) => [life.shardId, life.fromSnapshotOffset]));
    restarts.push({ atMs, offsets, stateHashBefore, stateHashAfter: region.supervisor.stateHash() });
  };

  const windowMs = MIN_RESULT_LATENCY_MS;
  const progressEveryMs = options.progressEveryMs ?? 60_000;
  let nextProgressMs = startMs + progressEveryMs;
  let windowStart = startMs;
  while (windowStart < endMs) {
    const windowEnd = Math.min(windowStart + windowMs, endMs);
    for (let due = queue.peekMs(); due !== undefined && due < windowEnd; due = queue.peekMs()) {
      const restartAt = restartTimes[0];
      if (restartAt !== undefined && due > restartAt) {
        restartTimes.shift();
        await restart(restartAt);
        continue;
      }
      const event = queue.pop();
      if (event === undefined) break;
      clock.set(Math.max(clock.nowMs(), event.atMs));
      event.run();
    }
    for (let at = restartTimes[0]; at !== undefined && at < windowEnd; at = restartTimes[0]) {
      restartTimes.shift();
      await restart(at);
    }
    clock.set(windowEnd);
    region.supervisor.advanceTo(windowEnd);
    const handled = await settle(region, released, fleet, windowEnd);
    if (windowEnd >= nextProgressMs) {
      options.onProgress?.((windowEnd - startMs) / options.durationMs, restarts.length === 0 ? region.stats : combined(earlierStats, region.stats));
      nextProgressMs += progressEveryMs;
    }
    // Nothing left this window to react to: jump to the next thing that happens.
    const nextEvent = Math.min(queue.peekMs() ?? endMs, region.supervisor.nextDueMs() ?? endMs, endMs);
    windowStart = handled > 0 ? windowEnd : Math.max(windowEnd, nextEvent);
  }
  fleet.stop();
  workload.stop();
  clock.set(endMs);
  region.supervisor.advanceTo(endMs);
  await settle(region, released, fleet, endMs);
  if (options.finalSnapshot !== false) await region.supervisor.snapshotAll();
  const stats = combined(earlierStats, region.stats);
  options.onProgress?.(1, stats);

  const stateHash = region.supervisor.stateHash();
  const digest = journalDigest(store);
  const report = checkJournal(store, geozones);
  await store.close();
  return {
    seed: options.seed,
    nodes: options.nodes,
    geozones,
    durationMs: options.durationMs,
    rate: options.ratePerSec,
    faults: options.faults,
    ...stats,
    inFlight: report.inFlight,
    invariantViolations: report.violations,
    violationsByRule: report.byRule,
    stateHash,
    journalDigest: digest.digest,
    wallMs: Math.round(monotonicNowMs() - wallStart),
    ...(options.restartAtMs === undefined ? {} : { restarts }),
  };
}

function combined(...parts: RegionStats[]): RegionStats {
  const total = emptyStats();
  for (const part of parts) addStats(total, part);
  return total;
}

/**
 * Makes everything durable, then hands the released effects to the fleet (and
 * forwards to their shards) in shard order, until nothing more is released.
 * Returns how many effects were handled.
 */
async function settle(region: Region, released: Map<string, RegionEffect[]>, fleet: SimFleet, atMs: number): Promise<number> {
  let handled = 0;
  for (;;) {
    await region.supervisor.whenIdle();
    let any = false;
    for (const [, effects] of released) {
      if (effects.length === 0) continue;
      const batch = effects.splice(0);
      any = true;
      handled += batch.length;
      for (const effect of batch) {
        const internal = internalInput(effect);
        if (internal !== undefined) region.supervisor.shard(internal.shardId).process(internal.input, atMs);
        else fleet.onEffect(effect);
      }
    }
    if (!any) return handled;
  }
}

/** Runs the independent invariant checker over every shard's journal in a store. */
export function checkJournal(store: LmdbStore, geozones?: readonly string[]): InvariantReport {
  const checker = new InvariantChecker();
  for (const shardId of geozones ?? store.shardIds()) checker.checkShard(shardId, store.journal(shardId).read(0));
  return checker.finish();
}
