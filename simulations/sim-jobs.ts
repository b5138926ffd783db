import type { TrainingJobV1 } from '../actors/central/training-wire.js';
import type { Prng } from '../runtime/random.js';
import type { BatchJobFate } from './simulated-batch-queue.js';
import type { TransferFault } from './simulated-data-mover.js';

/**
 * The seeded training-job workload of `arcnet sim`: TrainingJob v1 submissions
 * (the edge's own schema parses them) arriving as a Poisson process, in a mix
 * that lands on both paths: HPC-sized by FLOPs, by dataset size, by urgency, a
 * small job whose dataset a region cannot read (an s3: URI), and federated jobs
 * on the shipped digits data set that the simulated fleet trains for real.
 *
 * The first five jobs take the five kinds in turn; the rest are drawn from the mix.
 * The whole plan is drawn up front, so the faults it forces are known before the
 * data mover and batch queue are built: with faults on, the first HPC jobs get
 * one of each (a transfer that stalls, a batch job that fails, a queue node lost
 * under its job) and the next is cancelled by its submitter; the others meet the
 * seeded fault rates of the simulated mover and queue.
 */
export interface JobPlanOptions {
  readonly jobsPerHour: number;
  /** First arrival not before this (the global view needs a round of regional summaries to place a job). */
  readonly fromMs: number;
  readonly untilMs: number;
  /** Simulated nodes per geozone: federated jobs ask for a share of them. */
  readonly nodesPerGeozone: number;
  /** A folder URI (file:///) federated checkpoints are written under. */
  readonly checkpointBaseUri: string;
  readonly faults: boolean;
  /** Share of jobs cancelled by their submitter, beyond the forced one (default 0.02 with faults). */
  readonly cancelRate?: number;
}

/** How the job is expected to go, for the sim's summary and its tests. */
export type JobKind = 'hpc-flops' | 'hpc-size' | 'hpc-critical' | 'hpc-unreadable' | 'federated';

export interface PlannedJob {
  readonly atMs: number;
  readonly kind: JobKind;
  readonly wire: TrainingJobV1;
  /** Set when the submitter cancels it: when. */
  readonly cancelAtMs?: number;
}

export interface JobPlan {
  readonly jobs: readonly PlannedJob[];
  /** Forced first-copy transfer faults by job id (the simulated mover's key). */
  readonly transferFaults: Readonly<Record<string, TransferFault>>;
  /** Forced batch job fates by job id (the simulated queue's job name). */
  readonly batchFates: Readonly<Record<string, BatchJobFate>>;
}

/** The mix, in draw order; federated takes the rest. */
const MIX: readonly (readonly [Exclude<JobKind, 'federated'>, number])[] = [
  ['hpc-flops', 0.18],
  ['hpc-size', 0.1],
  ['hpc-critical', 0.07],
  ['hpc-unreadable', 0.05],
];
/** The kinds of a plan's first jobs, in order (then drawn from MIX). */
const OPENING: readonly JobKind[] = ['federated', 'hpc-flops', 'hpc-size', 'hpc-critical', 'hpc-unreadable'];
/** Jobs a plan holds at most (a long run at a high rate is refused rather than allowed to grow without bound). */
export const MAX_PLANNED_JOBS = 100_000;
/** Federated rounds of a simulated job and their deadline (simulated compute takes 1 to 6 s). */
const FEDERATED_ROUNDS = 3;
const FEDERATED_ROUND_DEADLINE_MS = 20_000;

export function planJobs(prng: Prng, options: JobPlanOptions): JobPlan {
  const jobs: PlannedJob[] = [];
  const transferFaults: Record<string, TransferFault> = {};
  const batchFates: Record<string, BatchJobFate> = {};
  if (options.jobsPerHour <= 0) return { jobs, transferFaults, batchFates };
  const meanGapMs = 3_600_000 / options.jobsPerHour;
  const forced: ('stall' | 'fail' | 'nodeLost' | 'cancel')[] = options.faults ? ['stall', 'fail', 'nodeLost', 'cancel'] : [];
  const cancelRate = options.cancelRate ?? (options.faults ? 0.02 : 0);
  let atMs = options.fromMs;
  for (let n = 1; ; n++) {
    atMs += Math.max(1, Math.round(prng.exponential(meanGapMs)));
    if (atMs >= options.untilMs) break;
    if (jobs.length >= MAX_PLANNED_JOBS) throw new RangeError(`more than ${MAX_PLANNED_JOBS} training jobs planned: lower --jobs-per-hour or shorten the run`);
    const jobId = `sim-job-${String(n).padStart(5, '0')}`;
    // The first jobs take each kind in turn, so even a short run shows both paths and every reason.
    const kind = OPENING[n - 1] ?? pickKind(prng);
    const wire = jobOf(prng, kind, jobId, n, options);
    let cancelAtMs: number | undefined;
    if (kind !== 'federated') {
      const fault = forced.shift();
      if (fault === 'stall') transferFaults[jobId] = 'stall';
      else if (fault === 'fail') batchFates[jobId] = 'fail';
      else if (fault === 'nodeLost') batchFates[jobId] = 'nodeLost';
      else if (fault === 'cancel') cancelAtMs = atMs + 20_000;
    }
    if (cancelAtMs === undefined && prng.chance(cancelRate)) cancelAtMs = atMs + Math.round(prng.between(5_000, 300_000));
    jobs.push({ atMs, kind, wire, ...(cancelAtMs === undefined ? {} : { cancelAtMs }) });
  }
  return { jobs, transferFaults, batchFates };
}

function pickKind(prng: Prng): JobKind {
  let roll = prng.next();
  for (const [kind, share] of MIX) {
    if (roll < share) return kind;
    roll -= share;
  }
  return 'federated';
}

function jobOf(prng: Prng, kind: JobKind, jobId: string, n: number, options: JobPlanOptions): TrainingJobV1 {
  const base = options.checkpointBaseUri.replace(/\/+$/, '');
  // Small and ordinary unless the kind says otherwise: each HPC kind trips exactly its own rule.
  const smallGb = Math.round(prng.between(0.01, 40) * 100) / 100;
  const smallFlops = Math.round(prng.between(1, 900)) * 1e15;
  const urgency = prng.chance(0.2) ? 'background' : 'normal';
  const hpc = (over: Partial<TrainingJobV1>): TrainingJobV1 => ({
    'job-id': jobId,
    'dataset-uri': `file:///datasets/sim/${jobId}`,
    'dataset-size-gb': smallGb,
    'estimated-flops': smallFlops,
    'checkpoint-uri': `${base}/hpc/${jobId}.json`,
    urgency,
    ...over,
  });
  switch (kind) {
    case 'hpc-flops':
      return hpc({ 'estimated-flops': Math.round(prng.between(1.5, 20)) * 1e18 });
    case 'hpc-size':
      return hpc({ 'dataset-size-gb': Math.round(prng.between(101, 400)) });
    case 'hpc-critical':
      return hpc({ urgency: 'critical' });
    case 'hpc-unreadable':
      return hpc({ 'dataset-uri': `s3://arcnet-sim/datasets/${jobId}` });
    case 'federated': {
      const participants = Math.max(2, Math.min(8, Math.floor(options.nodesPerGeozone * 0.6)));
      return {
        'job-id': jobId,
        'dataset-uri': 'builtin:digits',
        'dataset-size-gb': 0.001,
        'estimated-flops': smallFlops,
        'checkpoint-uri': `${base}/federated/${jobId}`,
        urgency,
        'model-id': 'digits-softmax',
        rounds: FEDERATED_ROUNDS,
        'min-participants': Math.max(1, Math.ceil(participants / 2)),
        participants,
        'round-deadline-ms': FEDERATED_ROUND_DEADLINE_MS,
        'hyper-parameters': { 'learning-rate': 0.2, 'local-epochs': 1, 'batch-size': 16, seed: n, partitioning: n % 3 === 0 ? 'label-skew' : 'iid' },
      };
    }
  }
}
