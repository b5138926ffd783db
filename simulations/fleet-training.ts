import type { TrainingJobSpec } from '../actors/region-io.js';
import type { TrainTaskV1 } from '../actors/training-wire.js';
import { loadDataset } from '../adapters/datasets/dataset-files.js';
import type { Prng } from '../runtime/random.js';
import { DEFAULT_AGGREGATE_WHEN } from '../machines/federated-round.js';
import { initialWeights, parseShardUri, runTrainingTask, weightsFromBytes, weightsToBytes } from '../training/index.js';

/**
 * The simulated fleet's side of federated training: each `train` task is
 * answered by running the real trainer on the node's part of the data set,
 * after a seeded delay (simulated compute time), with seeded faults: a
 * straggler answers after the round's deadline, a dropout never answers, and a
 * node that is silent (the fleet's own silence fault) answers nothing.
 */
export interface TrainingFaults {
  /** Chance a task is answered after the round deadline. */
  readonly straggler: number;
  /** Chance a task is never answered. */
  readonly dropout: number;
  /**
   * Chance the node goes silent part-way through its task (no telemetry, no
   * answer) for long enough to be marked offline; needs the `goSilent` hook.
   */
  readonly silentMidRound?: number;
}

export const defaultTrainingFaults: TrainingFaults = { straggler: 0.05, dropout: 0.02 };
/** `arcnet sim`'s faults: those of the live demo, and nodes that go silent mid-round. */
export const simTrainingFaults: TrainingFaults = { ...defaultTrainingFaults, silentMidRound: 0.04 };
export const noTrainingFaults: TrainingFaults = { straggler: 0, dropout: 0 };

export interface TrainingFleetHooks {
  schedule(atMs: number, fn: () => void): void;
  /** A TrainingUpdate v1 (JSON) to the region's edge. */
  submitUpdate(body: string): void;
  /** Whether the simulated node is silent at that time (its answers are lost with it). */
  isSilent(nodeId: string, atMs: number): boolean;
  /** Makes the simulated node silent (telemetry and answers) from `atMs` until `untilMs`. */
  goSilent?(nodeId: string, atMs: number, untilMs: number): void;
}

/** What the fleet's training faults did (a simulation's summary reports them). */
export interface TrainingFaultCounts {
  tasks: number;
  stragglers: number;
  dropouts: number;
  silentMidRound: number;
}

/** Simulated compute time of one local training task. */
const MIN_TRAIN_MS = 1_000;
const MAX_TRAIN_MS = 6_000;

/** A node silent mid-round stays silent past the 30 s telemetry timeout, so the region marks it offline. */
const MID_ROUND_SILENCE_MIN_MS = 40_000;
const MID_ROUND_SILENCE_MAX_MS = 90_000;

export class SimTrainingFleet {
  private readonly answered = new Set<string>();
  readonly counts: TrainingFaultCounts = { tasks: 0, stragglers: 0, dropouts: 0, silentMidRound: 0 };

  constructor(
    private readonly prng: Prng,
    private readonly faults: TrainingFaults,
    private readonly hooks: TrainingFleetHooks,
  ) {}

  onTrain(task: TrainTaskV1, atMs: number): void {
    const key = `${task['job-id']}/${task.round}/${task['node-id']}`;
    // A task offered again (after a region restart) is answered once.
    if (this.answered.has(key)) return;
    this.answered.add(key);
    this.counts.tasks++;
    if (this.prng.chance(this.faults.dropout)) {
      this.counts.dropouts++;
      return;
    }
    const deadlineMs = Date.parse(task.deadline);
    const straggles = this.prng.chance(this.faults.straggler);
    if (straggles) this.counts.stragglers++;
    const at = straggles ? deadlineMs + Math.round(this.prng.between(500, 10_000)) : atMs + Math.round(this.prng.between(MIN_TRAIN_MS, MAX_TRAIN_MS));
    const goSilent = this.hooks.goSilent?.bind(this.hooks);
    if (goSilent !== undefined && this.faults.silentMidRound !== undefined && this.prng.chance(this.faults.silentMidRound)) {
      // Silent before its answer is due: the answer is lost with it, and its telemetry stops.
      this.counts.silentMidRound++;
      const from = atMs + Math.round(this.prng.between(100, Math.max(200, at - atMs - 100)));
      const until = from + Math.round(this.prng.between(MID_ROUND_SILENCE_MIN_MS, MID_ROUND_SILENCE_MAX_MS));
      this.hooks.schedule(from, () => goSilent(task['node-id'], from, until));
    }
    this.hooks.schedule(at, () => {
      if (this.hooks.isSilent(task['node-id'], at)) return;
      this.hooks.submitUpdate(JSON.stringify(updateFor(task)));
    });
  }
}

/** Trains as a node agent would and returns its TrainingUpdate v1. */
export function updateFor(task: TrainTaskV1): Record<string, unknown> {
  const dataset = loadDataset(parseShardUri(task['dataset-shard-uri']).datasetUri);
  const start = task.weights === null ? initialWeights(dataset.featureCount, dataset.classCount) : weightsFromBytes(new Uint8Array(Buffer.from(task.weights, 'base64')));
  const h = task['hyper-parameters'];
  const result = runTrainingTask(dataset, {
    datasetShardUri: task['dataset-shard-uri'],
    weights: start,
    options: { epochs: h['local-epochs'], learningRate: h['learning-rate'], batchSize: h['batch-size'], l2: h.l2, seed: h.seed },
  });
  return {
    'job-id': task['job-id'],
    round: task.round,
    'node-id': task['node-id'],
    'sample-count': result.sampleCount,
    weights: Buffer.from(weightsToBytes(result.weights)).toString('base64'),
    metrics: { loss: result.loss, accuracy: result.accuracy },
  };
}

/** A demo job for a simulated fleet: the digits, a few rounds, IID or label-skewed by turn. */
export function demoJob(geozone: string, jobId: string, n: number, checkpointUri: string): TrainingJobSpec {
  return {
    jobId,
    geozone,
    modelId: 'digits-softmax',
    datasetUri: 'builtin:digits',
    rounds: 5,
    minParticipants: 6,
    aggregateWhen: DEFAULT_AGGREGATE_WHEN,
    participants: 12,
    roundDeadlineMs: 15_000,
    checkpointUri,
    local: { learningRate: 0.2, localEpochs: 1, batchSize: 16, l2: 1e-4, seed: n },
    partitioning: n % 2 === 1 ? 'iid' : 'label-skew',
    testFraction: 0.2,
  };
}
