import { Prng } from '../runtime/random.js';
import type { Dataset } from './dataset.js';

/**
 * Multinomial logistic regression (softmax), trained by mini-batch SGD.
 * Weights are one flat vector, class-major: for each class its featureCount
 * weights then its bias, so FedAvg is an average of plain vectors. Training
 * runs in float64 and returns float32 (what travels and is stored); the same
 * start weights, samples and seed give the same bytes.
 */

export interface LocalTrainingOptions {
  /** Passes over the local samples. */
  readonly epochs: number;
  readonly learningRate: number;
  readonly batchSize: number;
  /** L2 penalty on the weights (not the biases). */
  readonly l2: number;
  /** Seeds the order samples are visited in. */
  readonly seed: number;
}

export const defaultLocalTraining: Omit<LocalTrainingOptions, 'seed'> = { epochs: 1, learningRate: 0.5, batchSize: 16, l2: 1e-4 };

/** Limits on what a task may ask of a trainer. */
export const TRAINING_LIMITS = { maxEpochs: 100, maxBatchSize: 4096, maxLearningRate: 10, maxL2: 1 } as const;

export function parameterCount(featureCount: number, classCount: number): number {
  return classCount * (featureCount + 1);
}

/** The starting point of round 1: all zeros (softmax regression is convex, so no symmetry to break). */
export function initialWeights(featureCount: number, classCount: number): Float32Array {
  return new Float32Array(parameterCount(featureCount, classCount));
}

function assertShape(weights: ArrayLike<number>, data: Dataset): void {
  const expected = parameterCount(data.featureCount, data.classCount);
  if (weights.length !== expected) {
    throw new RangeError(`weights have ${weights.length} values; a ${data.featureCount}-feature, ${data.classCount}-class model has ${expected}`);
  }
}

/** Class probabilities of sample `row` into `out` (numerically stable: the max logit is subtracted). */
function probabilities(w: Float64Array, data: Dataset, row: number, out: Float64Array): void {
  const d = data.featureCount;
  const base = row * d;
  let max = -Infinity;
  for (let k = 0; k < data.classCount; k++) {
    const off = k * (d + 1);
    let z = w[off + d] as number;
    for (let j = 0; j < d; j++) z += (w[off + j] as number) * (data.features[base + j] as number);
    out[k] = z;
    if (z > max) max = z;
  }
  let sum = 0;
  for (let k = 0; k < data.classCount; k++) {
    const e = Math.exp((out[k] as number) - max);
    out[k] = e;
    sum += e;
  }
  for (let k = 0; k < data.classCount; k++) out[k] = (out[k] as number) / sum;
}

export interface LocalTrainingResult {
  readonly weights: Float32Array;
  /** Mean cross-entropy over the local samples after training. */
  readonly loss: number;
  /** Accuracy over the local samples after training (0..1). */
  readonly accuracy: number;
}

/** Trains from `start` on the samples at `indices` of `data`. */
export function trainLocal(start: ArrayLike<number>, data: Dataset, indices: readonly number[], options: LocalTrainingOptions): LocalTrainingResult {
  assertShape(start, data);
  if (indices.length === 0) throw new RangeError('no samples to train on');
  const d = data.featureCount;
  const w = Float64Array.from(start);
  const grad = new Float64Array(w.length);
  const p = new Float64Array(data.classCount);
  const prng = new Prng(options.seed);
  const order = [...indices];
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = prng.int(i + 1);
      const t = order[i] as number;
      order[i] = order[j] as number;
      order[j] = t;
    }
    for (let from = 0; from < order.length; from += options.batchSize) {
      const to = Math.min(order.length, from + options.batchSize);
      grad.fill(0);
      for (let b = from; b < to; b++) {
        const row = order[b] as number;
        probabilities(w, data, row, p);
        const label = data.labels[row] as number;
        for (let k = 0; k < data.classCount; k++) {
          const err = (p[k] as number) - (k === label ? 1 : 0);
          const off = k * (d + 1);
          for (let j = 0; j < d; j++) grad[off + j] = (grad[off + j] as number) + err * (data.features[row * d + j] as number);
          grad[off + d] = (grad[off + d] as number) + err;
        }
      }
      const scale = options.learningRate / (to - from);
      for (let k = 0; k < data.classCount; k++) {
        const off = k * (d + 1);
        for (let j = 0; j < d; j++) w[off + j] = (w[off + j] as number) - scale * (grad[off + j] as number) - options.learningRate * options.l2 * (w[off + j] as number);
        w[off + d] = (w[off + d] as number) - scale * (grad[off + d] as number);
      }
    }
  }
  const weights = Float32Array.from(w);
  const { loss, accuracy } = evaluate(weights, data, indices);
  return { weights, loss, accuracy };
}

/** Mean cross-entropy and accuracy of `weights` over the samples at `indices`. */
export function evaluate(weights: ArrayLike<number>, data: Dataset, indices: readonly number[]): { loss: number; accuracy: number } {
  assertShape(weights, data);
  if (indices.length === 0) return { loss: 0, accuracy: 0 };
  const w = Float64Array.from(weights);
  const p = new Float64Array(data.classCount);
  let loss = 0;
  let correct = 0;
  for (const row of indices) {
    probabilities(w, data, row, p);
    const label = data.labels[row] as number;
    loss -= Math.log(Math.max(p[label] as number, 1e-12));
    let best = 0;
    for (let k = 1; k < data.classCount; k++) if ((p[k] as number) > (p[best] as number)) best = k;
    if (best === label) correct++;
  }
  return { loss: loss / indices.length, accuracy: correct / indices.length };
}
