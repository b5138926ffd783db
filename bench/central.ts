import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { createActor } from 'xstate';
import { defaultAlertConfig, summaryAlerts } from '../actors/central/alerts.js';
import { CentralBehaviour, classifyForRegions, defaultCentralConfig, type CentralConfig } from '../actors/central/central-behaviour.js';
import { CENTRAL_SHARD } from '../actors/central/central-io.js';
import { HpcDriver } from '../actors/central/hpc-driver.js';
import { parseRegionalSummary, parseTrainingJob } from '../actors/central/training-wire.js';
import { createRegion, type Region } from '../actors/region.js';
import type { RegionEffect } from '../actors/region-io.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import { globalViewMachine, type ViewSummary } from '../machines/global-view.js';
import { ManualClock, monotonicNowMs, realScheduler, type Scheduler } from '../runtime/clock.js';
import { SimulatedBatchQueue } from '../simulations/simulated-batch-queue.js';
import { SimulatedDataMover } from '../simulations/simulated-data-mover.js';
import { figure, median, round, type Figure } from './measure.js';

/**
 * The central orchestrator's costs, each next to a raw baseline from the same run:
 * - job intake: TrainingJob v1 text parsed (zod), classified, its classification journaled
 *   durably in LMDB (and an hpc-job actor spawned or a federated placement journaled), against
 *   raw LMDB appends of the very records the run wrote, in the same batches: durability is what
 *   an intake decision cannot avoid, so the ratio is what the orchestrator adds on top of it;
 * - summaries: RegionalSummary v1 text parsed and folded into the global view (the geozone's
 *   actor, the alert detectors, the journal), against the bare fold (the same machine and the
 *   same detectors on the same summaries, in memory);
 * - CPU per HPC job: 1,000 jobs through transfer, queue and run with the simulated data mover
 *   and batch queue on a manual clock (the HPC driver polling them as it does live), against the
 *   CPU of appending the same records to a fresh LMDB journal in the same batches.
 * Runs RUNS times; the figures are medians.
 */
const RUNS = 3;
const INTAKE_JOBS = 20_000;
const SUMMARY_GEOZONES = 20;
const SUMMARIES = 40_000;
const HPC_JOBS = 1_000;
/** Inputs submitted before the bench waits for the shard (a burst at the edge). */
const SUBMIT_BATCH = 256;

function openCentral(
  dataDir: string,
  clock: ManualClock,
  config: Partial<CentralConfig>,
  onEffects: (effects: readonly RegionEffect[]) => void,
): { region: Region; store: LmdbStore; central: () => CentralBehaviour } {
  const store = new LmdbStore(dataDir);
  let central: CentralBehaviour | undefined;
  const region = createRegion({
    geozones: [CENTRAL_SHARD],
    store,
    clock,
    scheduler: realScheduler,
    deliverForwards: false,
    behaviour: (id) => (id === CENTRAL_SHARD ? (central = new CentralBehaviour({ ...defaultCentralConfig, ...config })) : undefined),
    onEffects,
  });
  region.supervisor.recover(false);
  return {
    region,
    store,
    central: () => {
      if (central === undefined) throw new Error('the central shard was not created');
      return central;
    },
  };
}

/** Job i of a seeded-free, reproducible mix: about 2 in 5 HPC by FLOPs, size or urgency; the rest federated. */
function trainingJobText(i: number): string {
  const kind = i % 5;
  return JSON.stringify({
    'job-id': `job-${i}`,
    'dataset-uri': kind === 4 ? `s3://datasets/set-${i % 97}` : `file:///data/set-${i % 97}`,
    'dataset-size-gb': kind === 1 ? 250 : 1 + (i % 50),
    'estimated-flops': kind === 0 ? 2e18 : 1e15,
    'checkpoint-uri': `file:///checkpoints/job-${i}.ckpt`,
    urgency: kind === 2 ? 'background' : 'normal',
    'requester-geozone': 'CAISO',
  });
}

function summaryText(i: number): string {
  const geozone = `GZ${String(i % SUMMARY_GEOZONES).padStart(2, '0')}`;
  const round = Math.floor(i / SUMMARY_GEOZONES);
  // Now and then a region degrades, so every detector has work: active nodes drop by 40 %, GPUs
  // run hot for three periods, the mix shifts to battery.
  const active = round % 10 === 9 ? 60 : 100 - (round % 5);
  const battery = round % 12 === 11 ? 30 : round % 4;
  const hot = round % 8 >= 5;
  return JSON.stringify({
    'geozone-id': geozone,
    'total-nodes': 120,
    'active-nodes': active,
    'avg-gpu-util': hot ? 0.9 : 0.4 + (round % 7) / 20,
    'energy-breakdown': { cogen: active - battery - 10, grid: 10, battery },
    'open-reservations': round % 17,
    timestamp: new Date(round * 60_000).toISOString(),
  });
}

/** Inputs through the shard in bursts, the clock stepping `stepMs` per input; ms until the last is durable. */
async function throughShard(region: Region, clock: ManualClock, count: number, stepMs: number, input: (i: number) => Parameters<Region['supervisor']['submit']>[0]): Promise<number> {
  const start = monotonicNowMs();
  for (let i = 0; i < count; ) {
    for (let n = 0; n < SUBMIT_BATCH && i < count; n++, i++) {
      clock.set(clock.nowMs() + stepMs);
      region.supervisor.submit(input(i));
    }
    await nextTurn();
  }
  await region.supervisor.whenIdle();
  return monotonicNowMs() - start;
}

/** The records of a journal in the batches they were appended in, appended again to a fresh one. */
async function rawAppends(sourceDir: string, targetDir: string): Promise<{ ms: number; cpuMs: number; records: number }> {
  const source = new LmdbStore(sourceDir);
  const batches = [...source.journal(CENTRAL_SHARD).appends()];
  await source.close();
  const target = new LmdbStore(targetDir);
  const journal = target.journal(CENTRAL_SHARD);
  let records = 0;
  const cpu = process.cpuUsage();
  const start = monotonicNowMs();
  for (const batch of batches) {
    await journal.append(batch);
    records += batch.length;
  }
  const ms = monotonicNowMs() - start;
  const used = process.cpuUsage(cpu);
  await target.close();
  return { ms, cpuMs: (used.user + used.system) / 1000, records };
}

async function intakeRun(dir: string): Promise<{ perSec: number; rawPerSec: number; bareParseClassifyPerSec: number; records: number }> {
  const texts = Array.from({ length: INTAKE_JOBS }, (_, i) => trainingJobText(i));
  const clock = new ManualClock(0);
  const { region, store } = openCentral(join(dir, 'intake'), clock, {}, () => undefined);
  const ms = await throughShard(region, clock, INTAKE_JOBS, 1, (i) => ({ type: 'job.submit', job: parseTrainingJob(texts[i]) }));
  await store.close();
  const raw = await rawAppends(join(dir, 'intake'), join(dir, 'intake-raw'));
  // For context: the decision alone (parse and classify, nothing durable).
  const bareStart = monotonicNowMs();
  let hpc = 0;
  for (const text of texts) if (classifyForRegions(parseTrainingJob(text)).target === 'hpc') hpc++;
  const bareMs = monotonicNowMs() - bareStart;
  if (hpc === 0) throw new Error('the intake mix has no HPC job');
  return { perSec: (INTAKE_JOBS / ms) * 1000, rawPerSec: (INTAKE_JOBS / raw.ms) * 1000, bareParseClassifyPerSec: (INTAKE_JOBS / bareMs) * 1000, records: raw.records };
}

async function summaryRun(dir: string): Promise<{ perSec: number; barePerSec: number; alerts: number }> {
  const texts = Array.from({ length: SUMMARIES }, (_, i) => summaryText(i));
  const clock = new ManualClock(0);
  let alerts = 0;
  const { region, store } = openCentral(join(dir, 'summaries'), clock, {}, (effects) => {
    for (const e of effects) if (e.type === 'system') alerts++;
  });
  // One summary per geozone a minute: the clock steps 60 s / geozones per summary (no silence).
  const ms = await throughShard(region, clock, SUMMARIES, 60_000 / SUMMARY_GEOZONES, (i) => ({ type: 'summary.in', summary: parseRegionalSummary(texts[i]) }));
  await store.close();

  // The bare fold: the same summaries (parsed beforehand) through the same machine and detectors, in memory.
  const summaries = texts.map((text) => parseRegionalSummary(text));
  const start = monotonicNowMs();
  const actors = new Map<string, ReturnType<typeof createActor<typeof globalViewMachine>>>();
  let bareAlerts = 0;
  for (let i = 0; i < summaries.length; i++) {
    const s = summaries[i] as (typeof summaries)[number];
    const atMs = (i + 1) * (60_000 / SUMMARY_GEOZONES);
    const view: ViewSummary = { reportedAtMs: s.atMs, receivedAtMs: atMs, totalNodes: s.totalNodes, activeNodes: s.activeNodes, avgGpuUtil: s.avgGpuUtil, energyBreakdown: { ...s.energyBreakdown }, openReservations: s.openReservations };
    const actor = actors.get(s.geozoneId);
    if (actor === undefined) {
      const a = defaultAlertConfig;
      const created = createActor(globalViewMachine, { input: { geozone: s.geozoneId, summaryEveryMs: 60_000, silentPeriods: a.silentPeriods, recentWindow: a.recentWindow, summary: view } });
      created.start();
      actors.set(s.geozoneId, created);
      continue;
    }
    bareAlerts += summaryAlerts(actor.getSnapshot().context, view, defaultAlertConfig).length;
    actor.send({ type: 'summary', atMs, summary: view });
  }
  const bareMs = monotonicNowMs() - start;
  if (alerts === 0) throw new Error('no alert raised: the summaries give the detectors nothing to do');
  if (bareAlerts !== alerts) throw new Error(`the bare fold raised ${bareAlerts} alerts, the orchestrator ${alerts}: they are not doing the same work`);
  return { perSec: (SUMMARIES / ms) * 1000, barePerSec: (SUMMARIES / bareMs) * 1000, alerts };
}

/** A Scheduler on the manual clock: callbacks run when the bench moves time past them. */
class ManualScheduler implements Scheduler {
  private readonly due: { atMs: number; seq: number; fn: () => void; cancelled: boolean }[] = [];
  private seq = 0;
  /** Timers set and inputs seen: the bench waits until this stops moving. */
  activity = 0;

  constructor(private readonly clock: ManualClock) {}

  after(delayMs: number, fn: () => void): () => void {
    this.activity++;
    const entry = { atMs: this.clock.nowMs() + Math.max(0, delayMs), seq: this.seq++, fn, cancelled: false };
    this.due.push(entry);
    return () => {
      entry.cancelled = true;
    };
  }

  soon(fn: () => void): void {
    this.after(0, fn);
  }

  nextDueMs(): number | undefined {
    let next: number | undefined;
    for (const e of this.due) if (!e.cancelled && (next === undefined || e.atMs < next)) next = e.atMs;
    return next;
  }

  /** Runs every callback due at or before now, in (time, order set) order. */
  fireDue(): void {
    const now = this.clock.nowMs();
    const ready = this.due.filter((e) => !e.cancelled && e.atMs <= now).sort((a, b) => a.atMs - b.atMs || a.seq - b.seq);
    const keep = this.due.filter((e) => !e.cancelled && e.atMs > now);
    this.due.length = 0;
    this.due.push(...keep);
    for (const e of ready) e.fn();
  }
}

interface HpcRun {
  readonly cpuMsPerJob: number;
  readonly rawCpuMsPerJob: number;
  readonly records: number;
  readonly outcomes: Record<string, number>;
  readonly simulatedHours: number;
  /** Mover or queue calls that failed and were retried (the shard refusing an observation included). */
  readonly driverErrors: number;
  /** Calls to the data mover and the batch queue (status polls, mostly) per job. */
  readonly portCallsPerJob: number;
}

/** The same port, its calls counted. */
function counted<T extends object>(port: T, calls: { n: number }): T {
  return new Proxy(port, {
    get(target, name, receiver) {
      const value: unknown = Reflect.get(target, name, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        calls.n++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/** Polling period of the HPC driver in the run (a site would poll its queue no faster than this). */
const HPC_POLL_MS = 10_000;

async function hpcRun(dir: string, seed: number): Promise<HpcRun> {
  const clock = new ManualClock(0);
  const scheduler = new ManualScheduler(clock);
  // 10 GB datasets at the simulated mover's 1 GB/s; 256 queue nodes; runs of 10 to 20 minutes; default fault rates.
  const mover = new SimulatedDataMover({ clock, seed, sourceSizeBytes: () => 10e9 });
  const queue = new SimulatedBatchQueue({ clock, seed, nodes: 256, runDurationMs: (_spec, draw) => Math.round(10 * 60_000 + draw * 10 * 60_000) });
  let driverErrors = 0;
  const calls = { n: 0 };
  // The driver hears the shard's released commands; the shard hears the driver's observations.
  const late: { driver?: HpcDriver } = {};
  const { region, store, central } = openCentral(join(dir, `hpc-${seed}`), clock, { transferStallTimeoutMs: 5 * 60_000 }, (effects) => {
    for (const e of effects) if (e.type === 'hpc-command') late.driver?.onCommand(e.command);
  });
  const driver = new HpcDriver({
    // Counted, so the figure can say how much of the cost is polling the outside world.
    mover: counted(mover, calls),
    queue: counted(queue, calls),
    scheduler,
    observe: (input) => {
      scheduler.activity++;
      region.supervisor.submit(input);
    },
    pollEveryMs: HPC_POLL_MS,
    jobSpec: () => ({ command: ['/bin/true'], workDir: '/tmp', env: {}, timeLimitMinutes: 60 }),
    onError: () => {
      driverErrors++;
    },
  });
  late.driver = driver;
  const settle = async (): Promise<void> => {
    for (;;) {
      const before = scheduler.activity;
      await region.supervisor.whenIdle();
      await nextTurn();
      if (scheduler.activity === before) return;
    }
  };
  const cpu = process.cpuUsage();
  for (let i = 0; i < HPC_JOBS; i++) {
    region.supervisor.submit({
      type: 'job.submit',
      job: { jobId: `hpc-${i}`, datasetUri: `file:///data/set-${i}`, datasetSizeGb: 10, estimatedFlops: 2e18, checkpointUri: `file:///checkpoints/hpc-${i}.ckpt`, urgency: 'normal' },
    });
  }
  await settle();
  for (;;) {
    const next = [scheduler.nextDueMs(), region.supervisor.nextDueMs()].filter((x): x is number => x !== undefined);
    if (next.length === 0) break;
    clock.set(Math.max(clock.nowMs(), Math.min(...next)));
    region.supervisor.advanceTo(clock.nowMs());
    scheduler.fireDue();
    await settle();
  }
  const used = process.cpuUsage(cpu);
  const simulatedHours = clock.nowMs() / 3_600_000;
  const outcomes: Record<string, number> = {};
  for (const job of central().jobList()) {
    const state = job.ended?.state ?? 'open';
    outcomes[state] = (outcomes[state] ?? 0) + 1;
  }
  await driver.stop();
  await store.close();
  if ((outcomes['open'] ?? 0) > 0) throw new Error(`${outcomes['open']} HPC jobs never ended: the bench's clock stopped early`);
  const raw = await rawAppends(join(dir, `hpc-${seed}`), join(dir, `hpc-raw-${seed}`));
  return { cpuMsPerJob: (used.user + used.system) / 1000 / HPC_JOBS, rawCpuMsPerJob: raw.cpuMs / HPC_JOBS, records: raw.records, outcomes, simulatedHours, driverErrors, portCallsPerJob: calls.n / HPC_JOBS };
}

export async function centralBench(dir: string): Promise<Figure[]> {
  const intake: Awaited<ReturnType<typeof intakeRun>>[] = [];
  const summaries: Awaited<ReturnType<typeof summaryRun>>[] = [];
  const hpc: HpcRun[] = [];
  for (let run = 0; run < RUNS; run++) {
    intake.push(await intakeRun(join(dir, `run-${run}`)));
    summaries.push(await summaryRun(join(dir, `run-${run}`)));
    hpc.push(await hpcRun(join(dir, `run-${run}`), 42));
  }
  const m = <T>(rows: readonly T[], pick: (row: T) => number): number => median(rows.map(pick));
  // Each run's value over its own baseline: on a noisy machine the pairs move together, medians of separate columns less so.
  const ratios = <T>(rows: readonly T[], value: (row: T) => number, baseline: (row: T) => number): { runRatios: number[]; medianRunRatio: number } => {
    const each = rows.map((r) => value(r) / baseline(r));
    return { runRatios: each.map((x) => round(x, 3)), medianRunRatio: round(median(each), 3) };
  };
  const runs = <T>(rows: readonly T[], pick: (row: T) => number): number[] => rows.map((r) => round(pick(r)));
  return [
    figure({
      bench: 'central',
      metric: 'job intake decisions/s (TrainingJob v1 parsed, classified, journaled durably; embedded LMDB)',
      unit: 'jobs/s',
      value: m(intake, (r) => r.perSec),
      baseline: { what: 'raw LMDB appends of the same records in the same batches, as jobs/s (durability, the cost a decision cannot skip)', value: m(intake, (r) => r.rawPerSec) },
      extra: { runs: runs(intake, (r) => r.perSec), baselineRuns: runs(intake, (r) => r.rawPerSec), jobs: INTAKE_JOBS, recordsPerJob: round(m(intake, (r) => r.records) / INTAKE_JOBS), bareParseClassifyPerSec: round(m(intake, (r) => r.bareParseClassifyPerSec)), ...ratios(intake, (r) => r.perSec, (r) => r.rawPerSec) },
    }),
    figure({
      bench: 'central',
      metric: 'summaries folded/s into the global view (RegionalSummary v1 parsed, folded, detectors run, journaled durably)',
      unit: 'summaries/s',
      value: m(summaries, (r) => r.perSec),
      baseline: { what: 'the bare fold: the global-view machine and the alert detectors on the same summaries, in memory', value: m(summaries, (r) => r.barePerSec) },
      extra: { runs: runs(summaries, (r) => r.perSec), baselineRuns: runs(summaries, (r) => r.barePerSec), summaries: SUMMARIES, geozones: SUMMARY_GEOZONES, alerts: m(summaries, (r) => r.alerts), ...ratios(summaries, (r) => r.perSec, (r) => r.barePerSec) },
    }),
    figure({
      bench: 'central',
      metric: `orchestrator CPU per HPC job, ${HPC_JOBS} jobs through the simulated data mover and batch queue on a manual clock`,
      unit: 'CPU ms/job',
      value: m(hpc, (r) => r.cpuMsPerJob),
      baseline: { what: 'CPU of appending the same records to a fresh LMDB journal in the same batches, per job', value: m(hpc, (r) => r.rawCpuMsPerJob) },
      extra: {
        runs: runs(hpc, (r) => r.cpuMsPerJob),
        baselineRuns: runs(hpc, (r) => r.rawCpuMsPerJob),
        recordsPerJob: round(m(hpc, (r) => r.records) / HPC_JOBS),
        pollEveryMs: HPC_POLL_MS,
        simulatedHours: round(m(hpc, (r) => r.simulatedHours)),
        outcomes: hpc[0]?.outcomes,
        driverErrors: runs(hpc, (r) => r.driverErrors),
        portCallsPerJob: round(m(hpc, (r) => r.portCallsPerJob)),
        ...ratios(hpc, (r) => r.cpuMsPerJob, (r) => r.rawCpuMsPerJob),
      },
    }),
  ];
}
