import { CentralBehaviour, defaultCentralConfig, type CentralConfig } from '../actors/central/central-behaviour.js';
import { CENTRAL_SHARD, type CentralInput } from '../actors/central/central-io.js';
import { HpcDriver } from '../actors/central/hpc-driver.js';
import { parseRegionalSummary, parseTrainingJob } from '../actors/central/training-wire.js';
import { createRegion, type Region } from '../actors/region.js';
import type { RegionEffect } from '../actors/region-io.js';
import { effectToWire } from '../adapters/bus/topics.js';
import type { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import type { BatchJobSpec, BatchJobStatus, BatchQueue } from '../runtime/batch-queue.js';
import { realScheduler, type Clock } from '../runtime/clock.js';
import type { DataMover, TransferRequest, TransferStatus } from '../runtime/data-mover.js';
import type { ShardLimits } from '../runtime/shard.js';
import { SimulatedBatchQueue } from './simulated-batch-queue.js';
import { SimulatedDataMover } from './simulated-data-mover.js';
import type { JobPlan } from './sim-jobs.js';
import type { SimScheduler } from './sim-scheduler.js';

/** The orchestrator's settings in a simulation: faster copies and shorter batch jobs than a site's, so minutes of simulated time show whole jobs. */
export const SIM_TRANSFER_BYTES_PER_SEC = 2e9;
export const SIM_TRANSFER_STALL_TIMEOUT_MS = 90_000;
export const SIM_HPC_POLL_EVERY_MS = 5_000;
const SIM_BATCH_NODES = 3;
const SIM_BATCH_MIN_RUN_MS = 30_000;
const SIM_BATCH_MAX_RUN_MS = 4 * 60_000;
const SIM_BATCH_NODE_DOWN_MS = 5 * 60_000;
const SIM_JOB_TIME_LIMIT_MINUTES = 60;

/** What the HPC path's ports were asked, as seen from outside the orchestrator (the sim's own witness). */
export interface PortWitness {
  /** Batch jobs created per job name (a submit the queue answered with a new job). */
  readonly submissions: Map<string, number>;
  /** Submissions made before the mover had verified that job's copy (job names). */
  readonly submittedUnverified: string[];
  /** Port calls that threw (retried by the driver). */
  errors: number;
}

/**
 * The central orchestrator inside `arcnet sim`: the same shard behaviour as
 * `arcnet central` (CentralBehaviour, journaled in the same store as the region's
 * geozones under CENTRAL, so one replay of the folder rebuilds both) and the same
 * HPC driver, on the simulated data mover and batch queue with their seeded
 * faults, polling on simulated time. Its own Region object (not a shard of the
 * region's): the region forwards requests between its geozones, and the
 * orchestrator must never be one of them.
 */
export class SimCentral {
  region!: Region;
  readonly mover: SimulatedDataMover;
  readonly queue: SimulatedBatchQueue;
  readonly witness: PortWitness = { submissions: new Map(), submittedUnverified: [], errors: 0 };
  readonly released: RegionEffect[] = [];
  private driver!: HpcDriver;
  private readonly verified = new Set<string>();
  private readonly config: CentralConfig;

  constructor(
    private readonly options: {
      readonly seed: number;
      readonly clock: Clock;
      readonly scheduler: SimScheduler;
      readonly plan: JobPlan;
      readonly stagingUri: string;
      readonly limits: Partial<ShardLimits>;
    },
    store: LmdbStore,
  ) {
    const sizes = new Map(options.plan.jobs.map((j) => [j.wire['job-id'], j.wire['dataset-size-gb']]));
    this.mover = new SimulatedDataMover({
      clock: options.clock,
      seed: options.seed,
      bytesPerSecond: SIM_TRANSFER_BYTES_PER_SEC,
      sourceSizeBytes: (request) => Math.round((sizes.get(request.key) ?? 1) * 1e9),
      forcedFaults: options.plan.transferFaults,
    });
    this.queue = new SimulatedBatchQueue({
      clock: options.clock,
      seed: options.seed,
      nodes: SIM_BATCH_NODES,
      nodeDownMs: SIM_BATCH_NODE_DOWN_MS,
      runDurationMs: (_spec, draw) => Math.round(SIM_BATCH_MIN_RUN_MS + draw * (SIM_BATCH_MAX_RUN_MS - SIM_BATCH_MIN_RUN_MS)),
      forcedFates: options.plan.batchFates,
    });
    this.config = { ...defaultCentralConfig, stagingUri: options.stagingUri, transferStallTimeoutMs: SIM_TRANSFER_STALL_TIMEOUT_MS };
    this.open(store);
  }

  /** Builds the shard and its driver on a store (at the start and after each simulated restart). */
  open(store: LmdbStore): void {
    this.region = createRegion({
      geozones: [CENTRAL_SHARD],
      store,
      clock: this.options.clock,
      scheduler: realScheduler,
      deliverForwards: false,
      limits: this.options.limits,
      behaviour: () => new CentralBehaviour(this.config),
      shardOf: () => CENTRAL_SHARD,
      onEffects: (effects) => this.released.push(...effects),
    });
    this.driver = new HpcDriver({
      mover: new WitnessedMover(this.mover, this.verified),
      queue: new WitnessedQueue(this.queue, this.verified, this.witness),
      scheduler: this.options.scheduler,
      observe: (input) => this.region.supervisor.submit(input, this.options.clock.nowMs()),
      pollEveryMs: SIM_HPC_POLL_EVERY_MS,
      jobSpec: (job) => ({ command: ['simulated-training', job.jobId], workDir: '/nonexistent', env: { ARCNET_JOB_ID: job.jobId, ARCNET_STAGED_URI: job.stagedUri }, timeLimitMinutes: SIM_JOB_TIME_LIMIT_MINUTES }),
      onError: () => {
        this.witness.errors++;
      },
    });
  }

  /** Stops following the HPC work (a simulated crash: the mover and queue go on, as rcd and slurmctld do). */
  async stopDriver(): Promise<void> {
    await this.driver.stop();
  }

  /** A researcher's TrainingJob v1, through the edge's schema. */
  submitJob(wire: unknown): void {
    this.submit({ type: 'job.submit', job: parseTrainingJob(wire) });
  }

  cancelJob(jobId: string, reason: string): void {
    this.submit({ type: 'job.cancel', jobId, reason });
  }

  /** A region's RegionalSummary v1, through the wire format and the orchestrator's schema, as arc.summary.regional brings it. */
  summary(effect: RegionEffect): void {
    const wire = effectToWire(effect);
    if (wire !== undefined) this.submit({ type: 'summary.in', summary: parseRegionalSummary(JSON.stringify(wire.message)) });
  }

  /** Hands released HPC commands to the driver; returns the effects bound for the regions (FederatedTask v1). */
  takeReleased(): RegionEffect[] {
    const out: RegionEffect[] = [];
    for (const effect of this.released.splice(0)) {
      if (effect.type === 'hpc-command') this.driver.onCommand(effect.command);
      else if (effect.type === 'federated-task') out.push(effect);
    }
    return out;
  }

  private submit(input: CentralInput): void {
    this.region.supervisor.submit(input, this.options.clock.nowMs());
  }
}

/** The simulated mover, noting which keys' copies were verified (the queue's witness reads it). */
class WitnessedMover implements DataMover {
  constructor(
    private readonly inner: DataMover,
    private readonly verified: Set<string>,
  ) {}
  start(request: TransferRequest): Promise<TransferStatus> {
    return this.inner.start(request);
  }
  status(transferId: string): Promise<TransferStatus> {
    return this.inner.status(transferId);
  }
  find(key: string): Promise<TransferStatus | undefined> {
    return this.inner.find(key);
  }
  cancel(transferId: string): Promise<void> {
    return this.inner.cancel(transferId);
  }
  async verify(request: TransferRequest): Promise<{ readonly ok: boolean; readonly detail: string }> {
    const result = await this.inner.verify(request);
    if (result.ok) this.verified.add(request.key);
    return result;
  }
}

/** The simulated queue, counting the batch jobs created per job and the submissions made before the job's data was verified. */
class WitnessedQueue implements BatchQueue {
  constructor(
    private readonly inner: BatchQueue,
    private readonly verified: ReadonlySet<string>,
    private readonly witness: PortWitness,
  ) {}
  async submit(spec: BatchJobSpec): Promise<BatchJobStatus & { readonly resubmitted: boolean }> {
    if (!this.verified.has(spec.name)) this.witness.submittedUnverified.push(spec.name);
    const status = await this.inner.submit(spec);
    if (status.resubmitted) this.witness.submissions.set(spec.name, (this.witness.submissions.get(spec.name) ?? 0) + 1);
    return status;
  }
  status(queueJobId: string): Promise<BatchJobStatus> {
    return this.inner.status(queueJobId);
  }
  findByName(name: string): Promise<BatchJobStatus | undefined> {
    return this.inner.findByName(name);
  }
  cancel(queueJobId: string): Promise<void> {
    return this.inner.cancel(queueJobId);
  }
}
