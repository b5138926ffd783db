import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRegion, internalInput, type Region } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { addStats, emptyStats, type RegionStats } from '../actors/region-stats.js';
import { LmdbBlobStore } from '../adapters/lmdb/lmdb-blob-store.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import { CENTRAL_SHARD } from '../actors/central/central-io.js';
import { CanonicalHasher } from '../runtime/canonical.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { ManualClock, monotonicNowMs, realScheduler } from '../runtime/clock.js';
import { journalDigest } from '../runtime/journal-digest.js';
import { Prng } from '../runtime/random.js';
import { EventQueue } from './event-queue.js';
import { defaultFaults, MIN_RESULT_LATENCY_MS, noFaults, SimFleet } from './fleet.js';
import { noTrainingFaults, SimTrainingFleet, simTrainingFaults, type TrainingFaultCounts } from './fleet-training.js';
import { InvariantChecker, type InvariantReport, type Violation } from './invariants.js';
import { trainingFigures, type TrainingFigures } from './job-figures.js';
import { SimCentral, type PortWitness } from './sim-central.js';
import { planJobs } from './sim-jobs.js';
import { drainMicrotasks, SimScheduler } from './sim-scheduler.js';
import { SimBlobs, SimTrainingSide } from './sim-training.js';
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
   * With `training`, the orchestrator restarts too and its recovery re-attaches
   * the HPC driver to every open job, as a live restart does: its polls then
   * fall at other times, so the journal is no longer that of the run without
   * restarts; each restart's hash before and after still match and every rule holds.
   */
  readonly restartAtMs?: readonly number[];
  /** Called about once per `progressEveryMs` of simulated time with the fraction done. */
  readonly onProgress?: (fraction: number, stats: RegionStats) => void;
  /**
   * Pattern 3 in the simulation: a central orchestrator shard (CENTRAL, in the
   * same journal folder) fed a seeded mix of training jobs, HPC ones on the
   * simulated data mover and batch queue, federated ones trained by the fleet
   * with the real trainer. Default false (the region alone, as before).
   */
  readonly training?: boolean;
  /** Training jobs submitted per simulated hour (with `training`; default 12). */
  readonly jobsPerHour?: number;
  /**
   * Where federated checkpoints are written (a folder). It is named in the
   * journal, so it is not derived from the journal folder: two runs of one seed
   * in two folders must write the same journal. Default /tmp/arcnet-sim/checkpoints/seed-N.
   */
  readonly checkpointDir?: string;
  /** Simulated time between onProgress calls (default a minute). */
  readonly progressEveryMs?: number;
  /** Called with each region the run opens (the first, and the one after each restart): benchmarks watch it. */
  readonly onRegion?: (region: Region) => void;
}

/** Training jobs an hour when `training` is on and no rate is given. */
export const DEFAULT_JOBS_PER_HOUR = 12;
/** Jobs start arriving once the regions have sent their first summaries (a job before any is placed nowhere). */
const FIRST_JOB_AFTER_MS = 65_000;
/** The simulated data mover copies nowhere: its staging area is a name only. */
const SIM_STAGING_URI = 'file:///arcnet-sim/staging';

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
  /** With training: the jobs and rounds the run saw (from the journals), and what the fleet's faults did. */
  readonly training?: TrainingSummary;
  /** The first violations found (at most MAX_REPORTED_VIOLATIONS), so a failing seed says what broke. */
  readonly firstViolations?: readonly Violation[];
}

export interface TrainingSummary extends TrainingFigures {
  readonly jobsPerHour: number;
  readonly jobsSubmitted: number;
  readonly jobs: NonNullable<InvariantReport['jobs']> | null;
  readonly fleetFaults: TrainingFaultCounts;
  readonly hpcPortErrors: number;
  readonly refusedTrainingMessages: number;
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
  const training = options.training === true;
  const jobsPerHour = options.jobsPerHour ?? DEFAULT_JOBS_PER_HOUR;
  if (training && geozones.includes(CENTRAL_SHARD)) {
    await store.close();
    throw new ArcError(ErrorCodes.USAGE, `--geozones ${CENTRAL_SHARD}: that name is the orchestrator's shard in a simulation with training; name the geozone otherwise or use --training off`);
  }
  await store.putMeta('simulation', { ...options, onProgress: undefined, onRegion: undefined, startMs });

  const limits = options.snapshotEveryRecords === undefined ? {} : { snapshotEveryRecords: options.snapshotEveryRecords };
  const released = new Map<string, RegionEffect[]>(geozones.map((g) => [g, []]));
  const open = (): Region =>
    createRegion({
      geozones,
      store,
      clock,
      scheduler: realScheduler,
      deliverForwards: false,
      limits,
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
  const pattern3 = training ? startPattern3({ options, prng, clock, queue, store, limits, startMs, endMs, jobsPerHour, fleet, hooks }) : undefined;
  fleet.start(startMs);
  workload.start(startMs);
  const central = pattern3?.central;

  // Counters of the regions stopped by restarts (each life counts its own records).
  const earlierStats = emptyStats();
  const restartTimes = [...new Set(options.restartAtMs ?? [])].filter((at) => at >= startMs && at < endMs).sort((a, b) => a - b);
  const restarts: Restart[] = [];
  const hashNow = (): string => stateHashOf(region, central?.region);
  const restart = async (atMs: number): Promise<void> => {
    clock.set(Math.max(clock.nowMs(), atMs));
    region.supervisor.advanceTo(clock.nowMs());
    central?.region.supervisor.advanceTo(clock.nowMs());
    await central?.stopDriver();
    await region.supervisor.snapshotAll();
    await central?.region.supervisor.snapshotAll();
    const stateHashBefore = hashNow();
    addStats(earlierStats, region.stats);
    if (central !== undefined) addStats(earlierStats, central.region.stats);
    await store.close();
    store = new LmdbStore(options.journalDir, { encryptionKey: options.encryptionKey });
    region = open();
    options.onRegion?.(region);
    const lives = region.supervisor.recover();
    if (central !== undefined) {
      central.open(store);
      lives.push(...central.region.supervisor.recover());
    }
    const offsets = Object.fromEntries(lives.map((life) => [life.shardId, life.fromSnapshotOffset]));
    restarts.push({ atMs, offsets, stateHashBefore, stateHashAfter: hashNow() });
  };
  const settleAll = (atMs: number): Promise<number> => settle(region, released, fleet, atMs, pattern3);

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
      // The HPC driver's polls start promise chains on the simulated ports: let them land now.
      if (pattern3?.scheduler.takeRan() === true) await drainMicrotasks();
    }
    for (let at = restartTimes[0]; at !== undefined && at < windowEnd; at = restartTimes[0]) {
      restartTimes.shift();
      await restart(at);
    }
    clock.set(windowEnd);
    region.supervisor.advanceTo(windowEnd);
    central?.region.supervisor.advanceTo(windowEnd);
    const handled = await settleAll(windowEnd);
    if (windowEnd >= nextProgressMs) {
      options.onProgress?.((windowEnd - startMs) / options.durationMs, restarts.length === 0 ? region.stats : combined(earlierStats, region.stats));
      nextProgressMs += progressEveryMs;
    }
    // Nothing left this window to react to: jump to the next thing that happens.
    const nextEvent = Math.min(queue.peekMs() ?? endMs, region.supervisor.nextDueMs() ?? endMs, central?.region.supervisor.nextDueMs() ?? endMs, endMs);
    windowStart = handled > 0 ? windowEnd : Math.max(windowEnd, nextEvent);
  }
  fleet.stop();
  workload.stop();
  pattern3?.stop();
  clock.set(endMs);
  region.supervisor.advanceTo(endMs);
  central?.region.supervisor.advanceTo(endMs);
  await settleAll(endMs);
  await central?.stopDriver();
  if (options.finalSnapshot !== false) {
    await region.supervisor.snapshotAll();
    await central?.region.supervisor.snapshotAll();
  }
  // The orchestrator's records count too, as a replay of the folder counts every shard's.
  const stats = combined(earlierStats, region.stats, ...(central === undefined ? [] : [central.region.stats]));
  options.onProgress?.(1, stats);

  const stateHash = hashNow();
  const digest = journalDigest(store);
  const shards = central === undefined ? geozones : [...geozones, ...central.region.supervisor.shardIds].sort();
  const blobs = pattern3?.blobs;
  const report = checkJournal(store, shards, blobs === undefined ? undefined : (sha) => blobs.get(sha));
  const witnessed = pattern3 === undefined ? undefined : witnessViolations(pattern3.central.witness);
  const figures = pattern3 === undefined ? undefined : trainingFigures(store, geozones);
  await store.close();
  // The weights go to the folder's blob store, so a replay recomputes every aggregate from them.
  if (blobs !== undefined) await persistBlobs(options, blobs);
  const violationsByRule = { ...report.byRule };
  for (const [rule, count] of Object.entries(witnessed?.byRule ?? {})) violationsByRule[rule as keyof typeof violationsByRule] = (violationsByRule[rule as keyof typeof violationsByRule] ?? 0) + count;
  const violations = report.violations + (witnessed?.count ?? 0);
  return {
    seed: options.seed,
    nodes: options.nodes,
    geozones,
    durationMs: options.durationMs,
    rate: options.ratePerSec,
    faults: options.faults,
    ...stats,
    inFlight: report.inFlight,
    invariantViolations: violations,
    violationsByRule,
    stateHash,
    journalDigest: digest.digest,
    wallMs: Math.round(monotonicNowMs() - wallStart),
    ...(options.restartAtMs === undefined ? {} : { restarts }),
    ...(pattern3 === undefined || figures === undefined
      ? {}
      : {
          training: {
            jobsPerHour,
            jobsSubmitted: pattern3.plan.jobs.length,
            jobs: report.jobs ?? null,
            ...figures,
            fleetFaults: { ...pattern3.trainers.counts },
            hpcPortErrors: pattern3.central.witness.errors,
            refusedTrainingMessages: pattern3.refused.count,
          },
        }),
    ...(violations === 0 ? {} : { firstViolations: [...report.first, ...(witnessed?.first ?? [])] }),
  };
}

/** One hash over every shard of the folder in shard-id order, as a replay of the folder computes it. */
function stateHashOf(region: Region, central: Region | undefined): string {
  const shards = [...region.supervisor.all(), ...(central?.supervisor.all() ?? [])].sort((a, b) => (a.shardId < b.shardId ? -1 : a.shardId > b.shardId ? 1 : 0));
  const hasher = new CanonicalHasher();
  for (const shard of shards) hasher.add({ shard: shard.shardId, hash: shard.stateHash() });
  return hasher.hex();
}

interface Pattern3 {
  readonly central: SimCentral;
  readonly scheduler: SimScheduler;
  readonly side: SimTrainingSide;
  readonly trainers: SimTrainingFleet;
  readonly blobs: SimBlobs;
  readonly plan: ReturnType<typeof planJobs>;
  /** Training messages the region's edge schemas refused (none expected: the fleet speaks the wire formats). */
  readonly refused: { count: number };
  stop(): void;
}

/**
 * Sets up the orchestrator, the job workload, and the fleet's training side. The
 * PRNG streams are forked after the fleet's and the workload's, so a run with
 * training sees the same fleet and inference traffic as one without.
 */
function startPattern3(a: {
  options: SimulationOptions;
  prng: Prng;
  clock: ManualClock;
  queue: EventQueue;
  store: LmdbStore;
  limits: { snapshotEveryRecords?: number };
  startMs: number;
  endMs: number;
  jobsPerHour: number;
  fleet: SimFleet;
  hooks: { schedule: (atMs: number, fn: () => void) => void; submit: (input: RegionInput) => void };
}): Pattern3 {
  const { options, clock, queue } = a;
  const jobPrng = a.prng.fork();
  const trainPrng = a.prng.fork();
  const checkpointDir = options.checkpointDir ?? join('/tmp', 'arcnet-sim', 'checkpoints', `seed-${options.seed}`);
  const plan = planJobs(jobPrng, {
    jobsPerHour: a.jobsPerHour,
    fromMs: a.startMs + FIRST_JOB_AFTER_MS,
    untilMs: a.endMs,
    nodesPerGeozone: Math.floor(options.nodes / Math.max(1, new Set(options.geozones).size)),
    checkpointBaseUri: pathToFileURL(resolve(checkpointDir)).href,
    faults: options.faults,
  });
  const scheduler = new SimScheduler(clock, queue);
  const central = new SimCentral({ seed: options.seed, clock, scheduler, plan, stagingUri: SIM_STAGING_URI, limits: a.limits }, a.store);
  const blobs = new SimBlobs();
  let running = true;
  const trainers = new SimTrainingFleet(trainPrng, options.faults ? simTrainingFaults : noTrainingFaults, {
    schedule: a.hooks.schedule,
    isSilent: (nodeId, atMs) => a.fleet.isSilent(nodeId, atMs),
    goSilent: (nodeId, atMs, untilMs) => a.fleet.silence(nodeId, atMs, untilMs),
    submitUpdate: (body) => {
      if (running) side.update(body);
    },
  });
  const refused = { count: 0 };
  const side = new SimTrainingSide(blobs, a.hooks.submit, () => trainers, () => {
    refused.count++;
  });
  for (const job of plan.jobs) {
    queue.schedule(job.atMs, () => {
      if (running) central.submitJob(job.wire);
    });
    const cancelAt = job.cancelAtMs;
    if (cancelAt !== undefined) {
      queue.schedule(cancelAt, () => {
        if (running) central.cancelJob(job.wire['job-id'], 'cancelled by its submitter (simulated)');
      });
    }
  }
  return {
    central,
    scheduler,
    side,
    trainers,
    blobs,
    plan,
    refused,
    stop: () => {
      running = false;
    },
  };
}

/** What the sim's own witness of the HPC ports saw that the rules forbid (these are not in the journal: replay cannot see them). */
function witnessViolations(witness: PortWitness): { count: number; byRule: Record<string, number>; first: Violation[] } {
  const first: Violation[] = [];
  const byRule: Record<string, number> = {};
  const add = (rule: Violation['rule'], detail: string): void => {
    byRule[rule] = (byRule[rule] ?? 0) + 1;
    if (first.length < 20) first.push({ rule, shard: 'hpc-ports', offset: -1, atMs: -1, detail });
  };
  for (const name of witness.submittedUnverified) add('job-queued-before-verified', `the batch queue was asked to run ${name} before the data mover verified its copy`);
  for (const [name, count] of witness.submissions) if (count > 1) add('job-two-queue-submissions', `the batch queue got ${count} submissions for ${name}`);
  return { count: first.length === 0 ? 0 : Object.values(byRule).reduce((x, y) => x + y, 0), byRule, first };
}

async function persistBlobs(options: SimulationOptions, blobs: SimBlobs): Promise<void> {
  const store = new LmdbBlobStore(options.journalDir, { encryptionKey: options.encryptionKey });
  try {
    for (const [, bytes] of blobs.entries()) await store.put(bytes);
  } finally {
    await store.close();
  }
}

function combined(...parts: RegionStats[]): RegionStats {
  const total = emptyStats();
  for (const part of parts) addStats(total, part);
  return total;
}

/**
 * Makes everything durable, then hands the released effects to the fleet (and
 * forwards to their shards) in shard order, until nothing more is released.
 * With Pattern 3: summaries go to the orchestrator, the federated path's work
 * is done by the training side, the orchestrator's HPC commands go to its
 * driver (whose answers land before this returns) and its FederatedTask v1
 * messages to the regions. Returns how many effects were handled.
 */
async function settle(region: Region, released: Map<string, RegionEffect[]>, fleet: SimFleet, atMs: number, pattern3: Pattern3 | undefined): Promise<number> {
  let handled = 0;
  for (;;) {
    await region.supervisor.whenIdle();
    if (pattern3 !== undefined) await pattern3.central.region.supervisor.whenIdle();
    let any = false;
    for (const [, effects] of released) {
      if (effects.length === 0) continue;
      const batch = effects.splice(0);
      any = true;
      handled += batch.length;
      for (const effect of batch) {
        const internal = internalInput(effect);
        if (internal !== undefined) region.supervisor.shard(internal.shardId).process(internal.input, atMs);
        else if (pattern3 === undefined) fleet.onEffect(effect);
        else if (effect.type === 'summary') pattern3.central.summary(effect);
        else if (!pattern3.side.onEffect(effect, atMs)) fleet.onEffect(effect);
      }
    }
    if (pattern3 !== undefined && pattern3.central.released.length > 0) {
      any = true;
      handled += pattern3.central.released.length;
      const tasks = pattern3.central.takeReleased();
      await drainMicrotasks();
      for (const task of tasks) pattern3.side.federatedTask(task);
    }
    if (!any) return handled;
  }
}

/** Runs the independent invariant checker over every shard's journal in a store. */
export function checkJournal(store: LmdbStore, shardIds?: readonly string[], blobs?: (sha256: string) => Uint8Array | undefined): InvariantReport {
  const checker = new InvariantChecker(blobs === undefined ? {} : { blobs });
  for (const shardId of shardIds ?? store.shardIds()) checker.checkShard(shardId, store.journal(shardId).read(0));
  return checker.finish();
}
