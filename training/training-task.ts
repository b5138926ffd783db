import type { Dataset } from './dataset.js';
import { parseShardUri, shardIndices } from './dataset-shard.js';
import { trainLocal, type LocalTrainingOptions } from './softmax-regression.js';

/** One participant's work for one round, as a `train` message describes it. */
export interface TrainingTaskRun {
  /** From the `train` message's `dataset-shard-uri`. */
  readonly datasetShardUri: string;
  /** The round's starting (global) weights. */
  readonly weights: Float32Array;
  readonly options: LocalTrainingOptions;
}

export interface TrainingTaskResult {
  readonly weights: Float32Array;
  readonly sampleCount: number;
  readonly loss: number;
  readonly accuracy: number;
}

/** Trains on the shard's part of `dataset` (already loaded from the shard URI's data set). */
export function runTrainingTask(dataset: Dataset, task: TrainingTaskRun): TrainingTaskResult {
  const { train } = shardIndices(dataset, parseShardUri(task.datasetShardUri));
  const result = trainLocal(task.weights, dataset, train, task.options);
  return { ...result, sampleCount: train.length };
}
