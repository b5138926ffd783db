import { parentPort } from 'node:worker_threads';
import { loadDataset } from '../adapters/datasets/dataset-files.js';
import { initialWeights, parseShardUri, runTrainingTask, weightsFromBytes, weightsToBytes } from '../training/index.js';
import type { LocalTrainingOptions } from '../training/index.js';

/**
 * The trainer's thread (started by training-runner.ts): softmax regression is
 * synchronous CPU for seconds at a time, and on the agent's own thread it would
 * hold up telemetry reports, dispatches and the channel's heartbeats. One task
 * in, one answer out, then the thread is ended by its owner.
 */
export interface TrainingJobIn {
  readonly datasetShardUri: string;
  /** float32 little-endian bytes; null: start from zeros (round 1). */
  readonly weights: Uint8Array | null;
  readonly options: LocalTrainingOptions;
}

export type TrainingJobOut =
  | { readonly ok: true; readonly weights: Uint8Array; readonly sampleCount: number; readonly loss: number; readonly accuracy: number }
  | { readonly ok: false; readonly reason: string };

parentPort?.once('message', (job: TrainingJobIn) => {
  let answer: TrainingJobOut;
  try {
    const dataset = loadDataset(parseShardUri(job.datasetShardUri).datasetUri);
    const start = job.weights === null ? initialWeights(dataset.featureCount, dataset.classCount) : weightsFromBytes(job.weights);
    const result = runTrainingTask(dataset, { datasetShardUri: job.datasetShardUri, weights: start, options: job.options });
    answer = { ok: true, weights: weightsToBytes(result.weights), sampleCount: result.sampleCount, loss: result.loss, accuracy: result.accuracy };
  } catch (error) {
    answer = { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
  parentPort?.postMessage(answer);
});
