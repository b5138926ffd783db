import {
  BATCH_JOB_NAME_PATTERN,
  isTerminalBatchJobState,
  type BatchJobSpec,
  type BatchJobState,
  type BatchJobStatus,
  type BatchQueue,
} from '../runtime/batch-queue.js';
import type { Clock } from '../runtime/clock.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { pickByWeight, prngFor } from './seeded-fate.js';

/** How one job ends if nobody cancels it: as Slurm would say it. */
export type BatchJobFate = 'complete' | 'fail' | 'nodeLost' | 'timeout';

export interface SimulatedBatchQueueOptions {
  /** Simulated time (a ManualClock): the queue advances to the clock's time on every call. */
  readonly clock: Clock;
  readonly seed: number;
  /** Nodes of the queue, one job each at a time; default 4. */
  readonly nodes?: number;
  /** How long a job runs; default drawn from 10 to 60 simulated minutes. */
  readonly runDurationMs?: (spec: BatchJobSpec, draw: number) => number;
  /** The scheduler's delay before a submitted job may start; default 5 s. */
  readonly schedulingDelayMs?: number;
  /** Chance per job of each fault; default fail 0.05, nodeLost 0.02 (timeout follows from runDurationMs). */
  readonly faultRates?: Partial<Record<'fail' | 'nodeLost', number>>;
  /** How long a lost node stays out of the queue; default 30 simulated minutes. */
  readonly nodeDownMs?: number;
  /** Fates for given job names, whatever the seed draws. */
  readonly forcedFates?: Readonly<Record<string, BatchJobFate>>;
}

interface Job {
  readonly queueJobId: string;
  readonly name: string;
  readonly submittedAtMs: number;
  readonly runMs: number;
  readonly timeLimitMs: number;
  readonly fate: BatchJobFate;
  /** Fraction of its run after which a failing job fails or its node is lost. */
  readonly faultAfter: number;
  node: number | null;
  startedAtMs: number | null;
  endedAtMs: number | null;
  state: BatchJobState;
  rawState: string;
  exitCode: number | null;
  reason: string | null;
}

const DEFAULT_NODES = 4;
const DEFAULT_SCHEDULING_DELAY_MS = 5_000;
const DEFAULT_NODE_DOWN_MS = 30 * 60_000;
const DEFAULT_FAULT_RATES = { fail: 0.05, nodeLost: 0.02 } as const;
/** Jobs a simulated queue keeps; a scenario needing more is a bug, not a reason to grow without bound. */
export const MAX_SIMULATED_BATCH_JOBS = 1_000_000;

/**
 * The BatchQueue port on simulated time, for the simulation harness: a first-come queue over a
 * few nodes, each job running for a seeded time, with seeded faults (a command that fails, a node
 * lost under a running job, which then ends NODE_FAIL and leaves the queue one node short for a
 * while, a job over its time limit ending TIMEOUT). Slurm's words are kept in rawState. The queue
 * outlives its caller, as slurmctld does, so a simulated crash of the caller can be followed by
 * findByName. Deterministic: the same seed and the same calls at the same simulated times give
 * the same answers; job ids count up from 1 in submission order.
 */
export class SimulatedBatchQueue implements BatchQueue {
  private readonly clock: Clock;
  private readonly seed: number;
  private readonly runDurationMs: (spec: BatchJobSpec, draw: number) => number;
  private readonly schedulingDelayMs: number;
  private readonly nodeDownMs: number;
  private readonly faultRates: Record<'fail' | 'nodeLost', number>;
  private readonly forcedFates: Readonly<Record<string, BatchJobFate>>;
  private readonly jobs = new Map<string, Job>();
  private readonly jobsByName = new Map<string, Job>();
  /** Per node: the job on it, or the time it comes back after being lost. */
  private readonly nodes: ({ kind: 'free' } | { kind: 'busy'; job: Job } | { kind: 'down'; untilMs: number })[];
  private readonly waiting: Job[] = [];
  private advancedToMs = 0;
  private nextId = 1;

  constructor(options: SimulatedBatchQueueOptions) {
    this.clock = options.clock;
    this.seed = options.seed;
    this.runDurationMs = options.runDurationMs ?? ((_spec, draw) => Math.round(10 * 60_000 + draw * 50 * 60_000));
    this.schedulingDelayMs = options.schedulingDelayMs ?? DEFAULT_SCHEDULING_DELAY_MS;
    this.nodeDownMs = options.nodeDownMs ?? DEFAULT_NODE_DOWN_MS;
    this.faultRates = { ...DEFAULT_FAULT_RATES, ...options.faultRates };
    this.forcedFates = options.forcedFates ?? {};
    this.nodes = Array.from({ length: options.nodes ?? DEFAULT_NODES }, () => ({ kind: 'free' as const }));
    this.advancedToMs = this.clock.nowMs();
  }

  submit(spec: BatchJobSpec): Promise<BatchJobStatus & { readonly resubmitted: boolean }> {
    return settle(() => {
      if (!BATCH_JOB_NAME_PATTERN.test(spec.name)) throw new ArcError(ErrorCodes.VALIDATION, `batch job name '${spec.name}' must be 1 to 128 of A-Z a-z 0-9 . _ -`);
      this.advance();
      const existing = this.jobsByName.get(spec.name);
      if (existing !== undefined) return { ...describe(existing), resubmitted: false };
      if (this.jobs.size >= MAX_SIMULATED_BATCH_JOBS) throw new ArcError(ErrorCodes.BATCH_QUEUE, `the simulated queue holds ${MAX_SIMULATED_BATCH_JOBS} jobs already`);
      const prng = prngFor(this.seed, spec.name);
      const runMs = Math.max(1, Math.round(this.runDurationMs(spec, prng.next())));
      const timeLimitMs = spec.timeLimitMinutes * 60_000;
      const drawn = pickByWeight<BatchJobFate>(prng, [['fail', this.faultRates.fail], ['nodeLost', this.faultRates.nodeLost]], 'complete');
      const fate = this.forcedFates[spec.name] ?? (drawn === 'complete' && runMs > timeLimitMs ? 'timeout' : drawn);
      const job: Job = {
        queueJobId: String(this.nextId++),
        name: spec.name,
        submittedAtMs: this.clock.nowMs(),
        runMs,
        timeLimitMs,
        fate,
        faultAfter: prng.between(0.1, 0.9),
        node: null,
        startedAtMs: null,
        endedAtMs: null,
        state: 'queued',
        rawState: 'PENDING',
        exitCode: null,
        reason: 'Priority',
      };
      this.jobs.set(job.queueJobId, job);
      this.jobsByName.set(job.name, job);
      this.waiting.push(job);
      this.advance();
      return { ...describe(job), resubmitted: true };
    });
  }

  status(queueJobId: string): Promise<BatchJobStatus> {
    return settle(() => {
      this.advance();
      return describe(this.job(queueJobId));
    });
  }

  findByName(name: string): Promise<BatchJobStatus | undefined> {
    return settle(() => {
      this.advance();
      const job = this.jobsByName.get(name);
      return job === undefined ? undefined : describe(job);
    });
  }

  cancel(queueJobId: string): Promise<void> {
    return settle(() => {
      this.advance();
      const job = this.job(queueJobId);
      if (isTerminalBatchJobState(job.state)) return;
      const now = this.clock.nowMs();
      if (job.node !== null) this.nodes[job.node] = { kind: 'free' };
      const at = this.waiting.indexOf(job);
      if (at >= 0) this.waiting.splice(at, 1);
      this.end(job, now, 'cancelled', 'CANCELLED', job.startedAtMs === null ? null : 0, null);
      this.advance();
    });
  }

  /** The simulated time of the queue's next change (a job starting or ending, a node coming back). */
  nextChangeAtMs(): number | undefined {
    this.advance();
    return this.nextEvent()?.atMs;
  }

  /** Every submission ever made, in order (for invariant checks: never two jobs for one name). */
  submissions(): readonly { readonly queueJobId: string; readonly name: string; readonly submittedAtMs: number; readonly fate: BatchJobFate }[] {
    return [...this.jobs.values()].map(({ queueJobId, name, submittedAtMs, fate }) => ({ queueJobId, name, submittedAtMs, fate }));
  }

  private job(queueJobId: string): Job {
    const job = this.jobs.get(queueJobId);
    if (job === undefined) throw new ArcError(ErrorCodes.UNKNOWN_QUEUE_ITEM, `the simulated queue knows no job ${queueJobId}`, { queueJobId });
    return job;
  }

  /** Plays the queue's events in time order up to the clock's now. */
  private advance(): void {
    const now = this.clock.nowMs();
    for (;;) {
      const next = this.nextEvent();
      if (next === undefined || next.atMs > now) break;
      // Events apply in time order: nothing that follows may happen before this one.
      this.advancedToMs = Math.max(this.advancedToMs, next.atMs);
      next.apply();
    }
    this.advancedToMs = Math.max(this.advancedToMs, now);
  }

  /** The earliest pending event: a node back, a running job ending, the head of the queue starting. */
  private nextEvent(): { atMs: number; apply: () => void } | undefined {
    let best: { atMs: number; apply: () => void } | undefined;
    const consider = (atMs: number, apply: () => void): void => {
      if (best === undefined || atMs < best.atMs) best = { atMs, apply };
    };
    this.nodes.forEach((node, index) => {
      if (node.kind === 'down') consider(node.untilMs, () => (this.nodes[index] = { kind: 'free' }));
      if (node.kind === 'busy') {
        const { atMs, apply } = this.ending(node.job, index);
        consider(atMs, apply);
      }
    });
    const head = this.waiting[0];
    const free = this.nodes.findIndex((n) => n.kind === 'free');
    if (head !== undefined && free >= 0) {
      // Starts when the scheduler saw it, and not before the moment the queue got here.
      const atMs = Math.max(head.submittedAtMs + this.schedulingDelayMs, this.advancedToMs);
      consider(atMs, () => {
        this.waiting.shift();
        this.nodes[free] = { kind: 'busy', job: head };
        head.node = free;
        head.startedAtMs = atMs;
        head.state = 'running';
        head.rawState = 'RUNNING';
        head.reason = null;
      });
    }
    return best;
  }

  private ending(job: Job, node: number): { atMs: number; apply: () => void } {
    const started = job.startedAtMs ?? 0;
    const free = (): void => {
      this.nodes[node] = { kind: 'free' };
    };
    switch (job.fate) {
      case 'fail': {
        const atMs = started + Math.round(Math.min(job.runMs, job.timeLimitMs) * job.faultAfter);
        return { atMs, apply: () => (free(), this.end(job, atMs, 'failed', 'FAILED', 1, 'NonZeroExitCode')) };
      }
      case 'nodeLost': {
        const atMs = started + Math.round(Math.min(job.runMs, job.timeLimitMs) * job.faultAfter);
        return {
          atMs,
          apply: () => {
            this.nodes[node] = { kind: 'down', untilMs: atMs + this.nodeDownMs };
            this.end(job, atMs, 'failed', 'NODE_FAIL', null, 'NodeDown');
          },
        };
      }
      case 'timeout': {
        const atMs = started + job.timeLimitMs;
        return { atMs, apply: () => (free(), this.end(job, atMs, 'failed', 'TIMEOUT', null, 'TimeLimit')) };
      }
      case 'complete': {
        const atMs = started + job.runMs;
        return { atMs, apply: () => (free(), this.end(job, atMs, 'completed', 'COMPLETED', 0, null)) };
      }
    }
  }

  private end(job: Job, atMs: number, state: BatchJobState, rawState: string, exitCode: number | null, reason: string | null): void {
    job.node = null;
    job.endedAtMs = atMs;
    job.state = state;
    job.rawState = rawState;
    job.exitCode = exitCode;
    job.reason = reason;
  }
}

function describe(job: Job): BatchJobStatus {
  return { queueJobId: job.queueJobId, name: job.name, state: job.state, rawState: job.rawState, exitCode: job.exitCode, reason: job.reason };
}

function settle<T>(body: () => T): Promise<T> {
  try {
    return Promise.resolve(body());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
